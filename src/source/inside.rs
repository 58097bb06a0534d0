//! Opening a file strictly inside an export directory.
//!
//! A media path names a file below the export's folder, but the folder can
//! hold symbolic links (`photos/x.jpg -> /etc/passwd`, `files/d -> /etc`),
//! FIFOs that block a reader forever, and device nodes whose reading has
//! effects. Nothing outside the export may be read, whichever way a path
//! leads there, so the path is walked one component at a time from the
//! export's folder with `openat(O_NOFOLLOW)`: every folder on the way and the
//! file itself must be what they claim, not links, and the file must be a
//! regular file (looked at before it is opened, and checked again on the
//! descriptor opened). The export's folder itself is the one the user named:
//! a link to it is followed.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// Why a path inside the export was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Nothing is there.
    Missing,
    /// A component is a symbolic link (named: the component's path).
    Link(String),
    /// The file is not a regular file (a directory, FIFO, socket, device).
    NotAFile(&'static str),
    Io(String),
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

/// Opens `rel` (a relative path of normal components) below `base`.
pub fn open(base: &Path, rel: &Path) -> Result<File, Refused> {
    let io = |e: Errno| Refused::Io(std::io::Error::from(e).to_string());
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir: OwnedFd = rustix::fs::openat(rustix::fs::CWD, base, dir_flags, Mode::empty())
        .map_err(|e| {
            if e == Errno::NOENT {
                Refused::Missing
            } else {
                io(e)
            }
        })?;
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let Some((last, folders)) = names.split_last() else {
        return Err(Refused::Missing);
    };
    let mut walked = std::path::PathBuf::new();
    for name in folders {
        walked.push(name);
        let st = look(&dir, name, &walked)?;
        if st != FileType::Directory {
            return Err(Refused::Missing);
        }
        dir = rustix::fs::openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| refused(e, &walked))?;
    }
    walked.push(last);
    let t = look(&dir, last, &walked)?;
    if t != FileType::RegularFile {
        return Err(Refused::NotAFile(kind(t)));
    }
    // NONBLOCK: should a FIFO be put there in between, the open returns.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::openat(&dir, *last, flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| refused(e, &walked))?;
    let st = rustix::fs::fstat(&fd).map_err(io)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(Refused::NotAFile(kind(t)));
    }
    Ok(File::from(fd))
}

/// The type of `name` in `dir`, without following a link.
fn look(dir: &OwnedFd, name: &std::ffi::OsStr, walked: &Path) -> Result<FileType, Refused> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => Err(Refused::Link(walked.display().to_string())),
            t => Ok(t),
        },
        Err(e) => Err(refused(e, walked)),
    }
}

fn refused(e: Errno, walked: &Path) -> Refused {
    match e {
        Errno::NOENT | Errno::NOTDIR => Refused::Missing,
        // O_NOFOLLOW met a link that replaced what was looked at.
        Errno::LOOP => Refused::Link(walked.display().to_string()),
        e => Refused::Io(std::io::Error::from(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_files_inside_are_opened() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("photos/sub")).unwrap();
        std::fs::write(base.join("photos/ok.jpg"), b"jpeg").unwrap();
        std::fs::write(base.join("photos/sub/deep.jpg"), b"deep").unwrap();
        symlink(outside.path().join("secret"), base.join("photos/link.jpg")).unwrap();
        symlink(outside.path(), base.join("photos/dirlink")).unwrap();
        symlink("ok.jpg", base.join("photos/inner.jpg")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            base.join("photos/fifo"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let read = |rel: &str| {
            open(base, Path::new(rel)).map(|mut f| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                s
            })
        };
        assert_eq!(read("photos/ok.jpg"), Ok("jpeg".into()));
        assert_eq!(read("photos/sub/deep.jpg"), Ok("deep".into()));
        assert_eq!(
            read("photos/link.jpg"),
            Err(Refused::Link("photos/link.jpg".into()))
        );
        // Even a link that stays inside is not followed.
        assert_eq!(
            read("photos/inner.jpg"),
            Err(Refused::Link("photos/inner.jpg".into()))
        );
        assert_eq!(
            read("photos/dirlink/secret"),
            Err(Refused::Link("photos/dirlink".into()))
        );
        assert_eq!(read("photos/fifo"), Err(Refused::NotAFile("a FIFO")));
        assert_eq!(read("photos"), Err(Refused::NotAFile("a directory")));
        assert_eq!(read("photos/none.jpg"), Err(Refused::Missing));
        assert_eq!(read("photos/ok.jpg/x"), Err(Refused::Missing));
        // The export's own folder may be reached through a link.
        let via = outside.path().join("export");
        symlink(base, &via).unwrap();
        assert!(open(&via, Path::new("photos/ok.jpg")).is_ok());
    }
}
