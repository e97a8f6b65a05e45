//! grpc.Health: Check answers SERVING while the agent's server runs; Version reports ours.

use ttrpc::r#async::TtrpcContext;
use wire::health::{
    health_check_response::ServingStatus, CheckRequest, HealthCheckResponse, VersionCheckResponse,
};

pub struct HealthService;

/// The ttrpc protocol version we speak, as Kata reports it.
const GRPC_VERSION: &str = "0.0.1";

#[async_trait::async_trait]
impl wire::health_ttrpc::Health for HealthService {
    async fn check(&self, _: &TtrpcContext, _: CheckRequest) -> ttrpc::Result<HealthCheckResponse> {
        let mut r = HealthCheckResponse::new();
        r.status = ServingStatus::SERVING.into();
        Ok(r)
    }

    async fn version(
        &self,
        _: &TtrpcContext,
        _: CheckRequest,
    ) -> ttrpc::Result<VersionCheckResponse> {
        let mut r = VersionCheckResponse::new();
        r.grpc_version = GRPC_VERSION.into();
        r.agent_version = env!("CARGO_PKG_VERSION").into();
        Ok(r)
    }
}
