//! Gives the shared library the SONAME `libredlock.so.<exact version>`: there is no ABI
//! stability before 1.0, so a program linked against one version never loads another.

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libredlock.so.{version}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
