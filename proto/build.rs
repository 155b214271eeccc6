//! Generates the CRI v1 types and both client and server stubs from the vendored
//! `proto/api.proto`, and Berth's own API (`proto/berth/v1/*.proto`). `protox` parses the
//! files in pure Rust, so no `protoc` is needed (Debian's protoc 3.21 cannot read the
//! `debug_redact` option this release uses).
//!
//! The vendored NRI API (`proto/nri/api.proto`) is compiled separately, messages only:
//! Berth speaks NRI's ttrpc by hand (`src/nri/`), so no tonic stubs are generated for it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/api.proto",
        "proto/berth/v1/images.proto",
        "proto/berth/v1/containers.proto",
        "proto/berth/v1/volumes.proto",
        "proto/berth/v1/builds.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry registry secrets: their Debug impls are written by hand in lib.rs.
        .skip_debug(["runtime.v1.AuthConfig", "berth.v1.Auth"])
        .compile_fds(fds)?;

    let nri = "proto/nri/api.proto";
    println!("cargo:rerun-if-changed={nri}");
    let fds = protox::compile([nri], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
