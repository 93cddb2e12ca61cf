//! Objects nasm made before, for machines without nasm (vidchat's addition
//! to nasm-rs; see README.md in this crate's folder).
//!
//! An object is filed under a BLAKE2s digest of everything that decides its
//! bytes: the target, nasm's arguments (without debug information), the
//! source's path as the build gives it and its contents, and every file in
//! the include folders. A build without nasm takes an object only when that
//! digest matches, so a changed source, include or flag never links a stale
//! object: it fails as a missing nasm always did. With nasm installed,
//! `NASM_RS_RECORD=<folder>` assembles each file once more, without debug
//! information and from the crate's own folder (so the bytes do not depend
//! on where the crate lies), into `<folder>/<target>/<digest>.o`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use blake2::{Blake2s256, Digest};

/// The environment variable that names the folder to record objects in.
pub const RECORD_ENV: &str = "NASM_RS_RECORD";

/// The objects shipped with this crate.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prebuilt")
}

/// The name an object made by `nasm args file` (run in `src`) is filed under.
fn name(target: &str, args: &[&str], src: &Path, file: &Path) -> Result<String, String> {
    let mut hasher = Blake2s256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    let read = |path: &Path| fs::read(path).map_err(|e| format!("{}: {}", path.display(), e));
    part(target.as_bytes());
    for arg in args {
        part(arg.as_bytes());
    }
    part(file.to_string_lossy().as_bytes());
    part(&read(&src.join(file))?);
    for dir in args.iter().filter_map(|a| a.strip_prefix("-I")) {
        let dir = src.join(dir);
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        let mut includes: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        includes.sort();
        for include in includes {
            part(
                include
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .as_bytes(),
            );
            part(&read(&include)?);
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{:02x}", b)).collect();
    Ok(format!("{}.o", hex))
}

/// Copies the shipped object of each file into `dst`, named as nasm's own
/// output would be; an error when any is missing.
pub fn copy_shipped(
    target: &str,
    args: &[&str],
    src: &Path,
    files: &[PathBuf],
    dst: &Path,
) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dst).map_err(|e| format!("{}: {}", dst.display(), e))?;
    files
        .iter()
        .map(|file| {
            let shipped = shipped().join(target).join(name(target, args, src, file)?);
            let out = dst
                .join(file.file_name().unwrap_or_default())
                .with_extension("o");
            fs::copy(&shipped, &out).map_err(|e| {
                format!(
                    "no object made before from {} ({}): {}",
                    file.display(),
                    shipped.display(),
                    e
                )
            })?;
            Ok(out)
        })
        .collect()
}

/// Assembles each file again with `nasm` into `folder/target/`, under the
/// name a build without nasm looks for.
pub fn record(
    nasm: &Path,
    target: &str,
    args: &[&str],
    src: &Path,
    files: &[PathBuf],
    folder: &Path,
) -> Result<(), String> {
    let dir = folder.join(target);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    for file in files {
        let out = dir.join(name(target, args, src, file)?);
        super::run(
            Command::new(nasm)
                .current_dir(src)
                .args(args)
                .arg(file)
                .arg("-o")
                .arg(out),
        )?;
    }
    Ok(())
}
