//! `berthctl commit`: a container's changes as a new image (Docker's `commit`).

use clap::{ArgAction, Args};

use crate::{explain, resolve, Ctx};

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author of the new image ("Name <email>").
    #[arg(short, long, default_value = "")]
    author: String,
    /// Commit message (the history entry's comment).
    #[arg(short, long, default_value = "")]
    message: String,
    /// Dockerfile instruction for the new image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// Pause a running container while its changes are written (default true).
    #[arg(short, long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container (id, unique id prefix or name).
    container: String,
    /// REPOSITORY[:TAG] for the new image; without it the image is known by its id only.
    reference: Option<String>,
}

pub async fn commit(ctx: &mut Ctx, a: CommitArgs) -> anyhow::Result<i32> {
    let id = resolve::container(ctx, &a.container).await?.id;
    let req = ctx.req(berth_proto::berth::v1::CommitContainerRequest {
        container_id: id,
        reference: a.reference.unwrap_or_default(),
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
    });
    let done = ctx.ctr.commit_container(req).await.map_err(explain)?.into_inner();
    println!("{}", done.image_id);
    Ok(0)
}
