//! Helpers shared by the corpus sweeps.

use std::path::PathBuf;

/// The CIBs of Pacemaker's scheduler regression suite, as (file name,
/// text), sorted: `../shared/corpus/pacemaker-scheduler` next to the
/// checkout, or `$CIB_CORPUS`. In CI (`CI` set) a missing corpus fails the
/// test; elsewhere `None`, after a message.
pub fn corpus() -> Option<Vec<(String, String)>> {
    let dir = std::env::var_os("CIB_CORPUS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pacemaker-scheduler")
    });
    let Ok(entries) = std::fs::read_dir(&dir) else {
        if std::env::var_os("CI").is_some() {
            panic!("corpus {} is missing (required in CI)", dir.display());
        }
        eprintln!("skipping: corpus {} not found (set CIB_CORPUS)", dir.display());
        return None;
    };
    let mut files: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).expect("readable corpus file");
            (name, text)
        })
        .collect();
    files.sort();
    Some(files)
}
