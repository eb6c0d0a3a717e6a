//! The committed report is the output of the committed code and data: `meshcast-lab report
//! --check` regenerates it in memory (protocol specification from the codec, numbers and plots
//! from `report/data/`) and compares; and it does notice a stale file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(data: &Path, out: &Path) -> (Option<i32>, String) {
    let output = Command::new(bin("meshcast-lab"))
        .args(["report", "--check", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn the_committed_report_is_what_the_committed_code_generates() {
    let root = repo();
    let (code, text) = check(&root.join("report/data"), &root.join("report"));
    assert_eq!(
        code,
        Some(0),
        "{text}\nregenerate with `meshcast-lab report`"
    );
}

#[test]
fn a_stale_report_is_noticed() {
    let root = repo();
    let scratch = std::env::temp_dir().join(format!("meshcast-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("plots")).unwrap();
    let readme = std::fs::read_to_string(root.join("report/README.md")).unwrap();
    std::fs::write(
        scratch.join("README.md"),
        readme.replacen("| offset |", "| offs. |", 1),
    )
    .unwrap();
    for entry in std::fs::read_dir(root.join("report/plots"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(entry.path(), scratch.join("plots").join(entry.file_name())).unwrap();
    }
    let (code, text) = check(&root.join("report/data"), &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("stale: README.md"), "{text}");
}
