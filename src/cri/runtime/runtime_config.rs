use berth_proto as pb;

use crate::config::CgroupDriver;
use crate::daemon::Daemon;
use crate::error::Result;

/// `RuntimeConfig`: the cgroup driver, so kubelet can match its own to Berth's.
pub async fn runtime_config(d: &Daemon, _req: pb::RuntimeConfigRequest) -> Result<pb::RuntimeConfigResponse> {
    let driver = match d.config.cgroup_driver {
        CgroupDriver::Systemd => pb::CgroupDriver::Systemd,
        CgroupDriver::Cgroupfs => pb::CgroupDriver::Cgroupfs,
    };
    Ok(pb::RuntimeConfigResponse {
        linux: Some(pb::LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    })
}
