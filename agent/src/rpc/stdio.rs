//! WriteStdin / CloseStdin / ReadStdout / ReadStderr: find the process, then let `io::Stdio`
//! do the work with no container lock held (a read may wait for output for a long time).

use crate::agent::Agent;
use crate::container::Process;
use crate::error::AgentError;
use crate::io::Stream;
use std::sync::Arc;
use wire::agent;

async fn process(agent: &Agent, id: &str, exec_id: &str) -> Result<Arc<Process>, AgentError> {
    let entry = agent.registry.get(id)?;
    let p = entry.lock().await.process(exec_id)?;
    Ok(p)
}

pub async fn write(
    agent: &Agent,
    id: &str,
    exec_id: &str,
    data: &[u8],
) -> Result<usize, AgentError> {
    process(agent, id, exec_id)
        .await?
        .stdio
        .write_stdin(data)
        .await
}

pub async fn close(agent: &Agent, id: &str, exec_id: &str) -> Result<(), AgentError> {
    process(agent, id, exec_id).await?.stdio.close_stdin().await
}

pub async fn resize(agent: &Agent, req: &agent::TtyWinResizeRequest) -> Result<(), AgentError> {
    let rows = u16::try_from(req.row)
        .map_err(|_| AgentError::InvalidArgument(format!("row {}", req.row)))?;
    let cols = u16::try_from(req.column)
        .map_err(|_| AgentError::InvalidArgument(format!("column {}", req.column)))?;
    process(agent, &req.container_id, &req.exec_id)
        .await?
        .stdio
        .resize(rows, cols)
}

pub async fn read(
    agent: &Agent,
    req: &agent::ReadStreamRequest,
    which: Stream,
) -> Result<agent::ReadStreamResponse, AgentError> {
    let p = process(agent, &req.container_id, &req.exec_id).await?;
    let data = p.stdio.read(which, req.len as usize).await?;
    Ok(agent::ReadStreamResponse {
        data,
        ..Default::default()
    })
}
