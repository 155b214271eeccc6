//! The router's machinery: [`service!`] writes a tonic service impl from a table of RPCs,
//! each method handing its request to the RPC's own file through [`instrument::call`].
//!
//! [`instrument::call`]: crate::cri::instrument::call

use std::pin::Pin;

use futures_util::Stream;
use tonic::Status;

use crate::error::Error;

/// A server-streaming response.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The handler of an RPC not offered yet: `Unimplemented`, never a fake success.
pub fn not_yet<T>(rpc: &'static str) -> impl std::future::Future<Output = Result<T, Error>> {
    std::future::ready(Err(Error::Unimplemented(rpc)))
}

/// Wraps a finished list of messages as a stream.
pub fn stream_of<T: Send + 'static>(items: Vec<T>) -> BoxStream<T> {
    Box::pin(futures_util::stream::iter(items.into_iter().map(Ok)))
}

/// `impl Service for Type, handlers in module { ... }`: the tonic service impl for a type
/// with a `daemon: Arc<Daemon>` field. Each line `method(Request) -> Response = "Rpc";` names
/// the message types (in `berth_proto`) and the RPC's name for [`instrument::call`]; the
/// handler is `module::method::method(&daemon, request)`. The section a line sits in gives
/// the shape of the answer:
/// - `unary`: the handler's message;
/// - `paged`: the handler's pages (a `Vec`), streamed as the associated type `-> Stream of Page`;
/// - `streamed`: the handler's own [`BoxStream`], as the associated type `-> Stream of Item`;
/// - `unimplemented`: no handler; the RPC answers `Unimplemented`.
///
/// The whole impl comes out of one expansion, so `async_trait` sees plain `async fn`s.
///
/// [`instrument::call`]: crate::cri::instrument::call
macro_rules! service {
    (
        impl $service:ident for $ty:ident, handlers in $handlers:ident {
            $(unary {
                $($unary:ident($ureq:ident) -> $uresp:ident = $urpc:literal;)*
            })?
            $(paged {
                $($paged:ident($preq:ident) -> $pstream:ident of $ppage:ident = $prpc:literal;)*
            })?
            $(streamed {
                $($streamed:ident($sreq:ident) -> $sstream:ident of $sitem:ident = $srpc:literal;)*
            })?
            $(unimplemented {
                $($unimpl:ident($nreq:ident) -> $nresp:ident = $nrpc:literal;)*
            })?
        }
    ) => {
        #[::tonic::async_trait]
        impl $service for $ty {
            $($(
                async fn $unary(
                    &self,
                    request: ::tonic::Request<::berth_proto::$ureq>,
                ) -> ::std::result::Result<::tonic::Response<::berth_proto::$uresp>, ::tonic::Status> {
                    let handler = $handlers::$unary::$unary(&self.daemon, request.into_inner());
                    $crate::cri::instrument::call($urpc, handler).await
                }
            )*)?

            $($(
                type $pstream = $crate::cri::route::BoxStream<::berth_proto::$ppage>;

                async fn $paged(
                    &self,
                    request: ::tonic::Request<::berth_proto::$preq>,
                ) -> ::std::result::Result<::tonic::Response<Self::$pstream>, ::tonic::Status> {
                    let handler = $handlers::$paged::$paged(&self.daemon, request.into_inner());
                    let pages = $crate::cri::instrument::call($prpc, handler).await?;
                    Ok(::tonic::Response::new($crate::cri::route::stream_of(pages.into_inner())))
                }
            )*)?

            $($(
                type $sstream = $crate::cri::route::BoxStream<::berth_proto::$sitem>;

                async fn $streamed(
                    &self,
                    request: ::tonic::Request<::berth_proto::$sreq>,
                ) -> ::std::result::Result<::tonic::Response<Self::$sstream>, ::tonic::Status> {
                    let handler = $handlers::$streamed::$streamed(&self.daemon, request.into_inner());
                    $crate::cri::instrument::call($srpc, handler).await
                }
            )*)?

            $($(
                async fn $unimpl(
                    &self,
                    _request: ::tonic::Request<::berth_proto::$nreq>,
                ) -> ::std::result::Result<::tonic::Response<::berth_proto::$nresp>, ::tonic::Status> {
                    $crate::cri::instrument::call($nrpc, $crate::cri::route::not_yet($nrpc)).await
                }
            )*)?
        }
    };
}

pub(super) use service;
