//! Output files of a headless watch: the raw recording and the stats JSON.
//!
//! The recording is every media payload exactly as received, with no remuxing: a remux (e.g.
//! `ffmpeg -c copy`) rewrites the TS continuity counters and would hide loss from whoever
//! checks the file. A live recording stops at an arbitrary moment, so [`Recorder::finish`] cuts
//! the file back to the last PES boundary (just before the last packet that starts a payload
//! unit): the MPEG-TS muxer writes each PES contiguously, so what remains ends with whole
//! frames and decodes without error. The stats file is written to a temporary name in the same directory and
//! renamed, so a reader polling for it never sees half a JSON object.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends payloads to a file through a buffer.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    /// File offset just before the last whole TS packet written with payload_unit_start set.
    boundary: Option<u64>,
}

impl Recorder {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> io::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder {
            path: path.to_owned(),
            out: BufWriter::with_capacity(256 * 1024, file),
            bytes: 0,
            boundary: None,
        })
    }

    /// Appends one payload.
    pub fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        for (i, p) in payload.chunks_exact(188).enumerate() {
            if p[0] == 0x47 && p[1] & 0x40 != 0 {
                self.boundary = Some(self.bytes + (i * 188) as u64);
            }
        }
        self.out.write_all(payload)?;
        self.bytes += payload.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file and cuts it back to the last PES boundary (when there is one), so
    /// the last frame is whole. Returns the bytes kept.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        let kept = self.boundary.unwrap_or(self.bytes);
        if kept < self.bytes {
            self.out.get_ref().set_len(kept)?;
        }
        self.out.get_ref().sync_data()?;
        Ok(kept)
    }
}

/// Writes `contents` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshcast-record-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn packet(start: bool, fill: u8) -> [u8; 188] {
        let mut p = [fill; 188];
        p[0] = 0x47;
        p[1] = if start { 0x41 } else { 0x01 };
        p
    }

    #[test]
    fn recording_keeps_the_bytes_exactly_up_to_the_last_unit_boundary() {
        let d = scratch("rec");
        let p = d.join("r.ts");
        let mut r = Recorder::create(&p).unwrap();
        let first = [packet(true, 1), packet(false, 2), packet(false, 3)].concat();
        let second = [packet(true, 4), packet(false, 5)].concat();
        r.write(&first).unwrap();
        r.write(&second).unwrap();
        assert_eq!(r.bytes(), 5 * 188);
        // the unit begun by the fourth packet may be cut short: it is dropped
        assert_eq!(r.finish().unwrap(), 3 * 188);
        assert_eq!(std::fs::read(&p).unwrap(), first);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_recording_without_unit_starts_is_kept_whole() {
        let d = scratch("rec-whole");
        let p = d.join("r.ts");
        let mut r = Recorder::create(&p).unwrap();
        r.write(&[packet(false, 1), packet(false, 2)].concat())
            .unwrap();
        assert_eq!(r.finish().unwrap(), 2 * 188);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let d = scratch("atomic");
        let p = d.join("s.json");
        write_atomically(&p, b"{\"a\": 1}").unwrap();
        write_atomically(&p, b"{\"a\": 2}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\": 2}");
        let entries: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(entries.len(), 1, "temporary file left behind");
        assert!(write_atomically(&d.join("missing-dir").join("x.json"), b"x").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
