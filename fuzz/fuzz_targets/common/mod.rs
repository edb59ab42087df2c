//! Helpers shared by the fuzz targets: scratch directories on tmpfs and seed writing.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory, removed on drop. On `/dev/shm` when it exists, so that targets that
/// go through the file system stay fast.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!(
            "vigil-fuzz-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a scratch directory");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// When `VIGIL_FUZZ_WRITE_SEEDS` names a directory, writes the seeds that `make` builds
/// there (one file per seed) and exits: the seeds come from the production encoders.
pub fn write_seeds_if_asked(make: impl FnOnce() -> Vec<(String, Vec<u8>)>) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(dir) = std::env::var_os("VIGIL_FUZZ_WRITE_SEEDS") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("creating the seed directory");
            for (name, bytes) in make() {
                std::fs::write(dir.join(name), bytes).expect("writing a seed");
            }
            std::process::exit(0);
        }
    });
}
