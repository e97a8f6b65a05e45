//! zagent.Admin: container listing for zagent-ctl (`ps`, `rm` without --force).

use crate::agent::Agent;
use std::sync::Arc;
use ttrpc::r#async::TtrpcContext;
use wire::zagent::{ContainerInfo, ListContainersRequest, ListContainersResponse};

pub struct AdminService(pub Arc<Agent>);

#[async_trait::async_trait]
impl wire::zagent_ttrpc::Admin for AdminService {
    async fn list_containers(
        &self,
        _: &TtrpcContext,
        _: ListContainersRequest,
    ) -> ttrpc::Result<ListContainersResponse> {
        let mut resp = ListContainersResponse::new();
        for (id, entry) in self.0.registry.all() {
            let c = entry.lock().await;
            let mut info = ContainerInfo::new();
            info.id = id;
            info.state = c.state().name().into();
            info.pid = c.init.pid;
            if let Some(code) = c.init.exit_code() {
                info.has_exit_status = true;
                info.exit_status = code;
            }
            resp.containers.push(info);
        }
        Ok(resp)
    }
}
