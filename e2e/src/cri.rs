//! CRI clients for the tests: `k8s-cri`'s independently generated stubs (cri-api v0.32,
//! a Kubernetes-1.32-era kubelet's wire format), over the unix socket.

use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

pub use k8s_cri::v1;

/// Both CRI services on one connection.
#[derive(Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    pub async fn connect(socket: &Path) -> anyhow::Result<Cri> {
        let path = socket.to_path_buf();
        let channel = tonic::transport::Endpoint::try_from("http://berth.invalid")?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// PullImage, returning the image ref.
    pub async fn pull(&mut self, image: &str, auth: Option<cri::AuthConfig>) -> Result<String, tonic::Status> {
        let req = cri::PullImageRequest {
            image: Some(spec(image)),
            auth,
            sandbox_config: None,
        };
        Ok(self.images.pull_image(req).await?.into_inner().image_ref)
    }

    /// ImageStatus; `None` when the image is not there.
    pub async fn status(&mut self, image: &str) -> Result<Option<cri::Image>, tonic::Status> {
        let req = cri::ImageStatusRequest {
            image: Some(spec(image)),
            verbose: false,
        };
        Ok(self.images.image_status(req).await?.into_inner().image)
    }

    pub async fn list(&mut self) -> Result<Vec<cri::Image>, tonic::Status> {
        Ok(self
            .images
            .list_images(cri::ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images)
    }

    pub async fn remove(&mut self, image: &str) -> Result<(), tonic::Status> {
        self.images
            .remove_image(cri::RemoveImageRequest {
                image: Some(spec(image)),
            })
            .await?;
        Ok(())
    }
}

pub fn spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

pub fn basic_auth(user: &str, pass: &str) -> cri::AuthConfig {
    cri::AuthConfig {
        username: user.into(),
        password: pass.into(),
        ..Default::default()
    }
}
