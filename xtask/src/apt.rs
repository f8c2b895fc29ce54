//! Debian packages the tasks need (Chromium for the browser test, wrk for
//! the benchmarks' calibration), installed with apt-get when missing and
//! xtask runs as root.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::run;

fn root_user() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure `binary` exists, installing `package` when it does not and
/// this runs as root. `Err` says how to install it otherwise.
pub fn ensure(binary: &Path, package: &str) -> Result<(), String> {
    if binary.exists() {
        return Ok(());
    }
    if !root_user() {
        return Err(format!(
            "{} is missing: `sudo apt-get install -y {package}`",
            binary.display()
        ));
    }
    eprintln!("xtask: installing Debian's {package} with apt-get");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", package][..],
    ] {
        let mut apt = Command::new("apt-get");
        apt.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        run(apt, &format!("apt-get ({package})"))?;
    }
    Ok(())
}
