use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::build::{unpack_context, BuildOptions, Builder, Progress, Workspace};
use crate::cri::BoxStream;
use crate::error::{Error, Result};

fn options(o: pb::BuildOptions) -> Result<BuildOptions> {
    let (zstd, estargz) = match o.compression.as_str() {
        "" | "gzip" => (false, false),
        "zstd" => (true, false),
        "estargz" => (false, true),
        other => {
            return Err(Error::InvalidArgument(format!(
                "compression {other:?}: gzip, zstd or estargz"
            )))
        }
    };
    Ok(BuildOptions {
        dockerfile: o.dockerfile,
        tags: o.tags,
        build_args: o.build_args.into_iter().collect(),
        target: o.target,
        no_cache: o.no_cache,
        pull: o.pull,
        network: o.network,
        platform: o.platform,
        labels: o.labels.into_iter().collect(),
        zstd,
        estargz,
    })
}

fn event(p: Progress) -> pb::BuildEvent {
    use pb::build_event::Event;
    let event = match p {
        Progress::Step {
            index,
            total,
            stage,
            instruction,
        } => Event::Step(pb::BuildStep {
            index,
            total,
            stage,
            instruction,
        }),
        Progress::Output(bytes) => Event::Output(bytes),
        Progress::Done { index, cached, seconds } => Event::Done(pb::BuildStepDone { index, cached, seconds }),
        Progress::Warning(w) => Event::Warning(w),
    };
    pb::BuildEvent { event: Some(event) }
}

/// Receives the context into the workspace (spooled, then unpacked).
async fn receive(ws: &Workspace, stream: &mut Streaming<pb::BuildRequest>, max: u64) -> Result<()> {
    let spool = ws.spool_path();
    let mut out = tokio::fs::File::create(&spool)
        .await
        .map_err(|e| Error::Internal(format!("spooling the context: {e}")))?;
    let mut received: u64 = 0;
    while let Some(msg) = stream
        .message()
        .await
        .map_err(|s| Error::InvalidArgument(format!("context stream: {}", s.message())))?
    {
        let Some(pb::build_request::Part::Context(data)) = msg.part else {
            return Err(Error::InvalidArgument(
                "only context data may follow the options".into(),
            ));
        };
        received += data.len() as u64;
        if received > max {
            return Err(Error::ResourceExhausted(format!(
                "the build context is over {max} bytes"
            )));
        }
        out.write_all(&data)
            .await
            .map_err(|e| Error::Internal(format!("spooling the context: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::Internal(format!("spooling the context: {e}")))?;
    if received > 0 {
        let (spool, dir) = (spool.clone(), ws.context_dir());
        tokio::task::spawn_blocking(move || unpack_context(&spool, &dir, max))
            .await
            .map_err(|e| Error::Internal(format!("context task: {e}")))??;
    }
    let _ = std::fs::remove_file(&spool);
    Ok(())
}

/// `Build`: options, then the context; progress streamed back, then the result. The build
/// stops (and cleans up) when the client goes away.
pub async fn build(
    builder: Arc<Builder>,
    max: u64,
    mut stream: Streaming<pb::BuildRequest>,
) -> Result<BoxStream<pb::BuildEvent>> {
    let first = stream
        .message()
        .await
        .map_err(|s| Error::InvalidArgument(format!("build stream: {}", s.message())))?;
    let Some(pb::BuildRequest {
        part: Some(pb::build_request::Part::Options(opts)),
    }) = first
    else {
        return Err(Error::InvalidArgument(
            "the first message must carry the build options".into(),
        ));
    };
    let opts = options(opts)?;
    let ws = builder.workspace()?;
    if let Err(e) = receive(&ws, &mut stream, max).await {
        ws.discard().await;
        return Err(e);
    }
    let (out_tx, out_rx) = mpsc::channel::<std::result::Result<pb::BuildEvent, Status>>(64);
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<Progress>(64);
        let forward_to = out_tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if forward_to.send(Ok(event(p))).await.is_err() {
                    break; // the client is gone: the build sees a closed channel and stops
                }
            }
        });
        let result = builder.build(ws, opts, tx).await;
        let _ = forward.await;
        let last = match result {
            Ok(r) => Ok(pb::BuildEvent {
                event: Some(pb::build_event::Event::Result(pb::BuildResult {
                    image_id: r.image_id,
                    tags: r.tags,
                })),
            }),
            Err(e) => {
                tracing::info!(error = %e, "build failed");
                Err(Status::from(Error::from(e)))
            }
        };
        let _ = out_tx.send(last).await;
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx)))
}
