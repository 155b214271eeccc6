//! Generates the CRI v1 types and both client and server stubs from the vendored
//! `proto/api.proto`. `protox` parses the file in pure Rust, so no `protoc` is needed
//! (Debian's protoc 3.21 cannot read the `debug_redact` option this release uses).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // AuthConfig carries registry secrets: its Debug impl is written by hand in lib.rs.
        .skip_debug(["runtime.v1.AuthConfig"])
        .compile_fds(fds)?;
    Ok(())
}
