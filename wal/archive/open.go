package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Symbolic links, FIFOs and devices are never read as archived files:
// pgwarm-wal writes only regular files (temp file, link into place), so
// anything else under a name in the archive was put there by someone
// else. Followed, a link makes `serve get` hand out any file the archive
// user can read; opened, a FIFO without a writer blocks its reader forever.
//
// Only the last component is refused: the archive root is the operator's
// path and may be a link or a mount point. ROOT/wal, which pgwarm-wal
// creates, must be a real directory (CheckRoot).

// OpenRegular opens path for reading without following a symbolic link at
// its last component, and only when it is a regular file. A FIFO cannot
// block it: the open is non-blocking and the type is checked on the open
// file (fstat), so nothing can be swapped in between. It returns the file
// and its size. A missing file is an error that satisfies
// errors.Is(err, fs.ErrNotExist); anything but a regular file is a
// KindForeign *Error naming path and what it is.
func OpenRegular(path string) (*os.File, int64, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		// ELOOP: the last component is a symbolic link (O_NOFOLLOW);
		// ENXIO: a socket. Say which, the open error alone says neither.
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENXIO) {
			if st, lerr := os.Lstat(path); lerr == nil && !st.Mode().IsRegular() {
				return nil, 0, notRegular(path, st.Mode())
			}
		}
		return nil, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, 0, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if uint32(st.Mode)&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, 0, notRegular(path, modeOf(uint32(st.Mode)))
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, 0, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), st.Size, nil
}

// ReadRegular is os.ReadFile through OpenRegular.
func ReadRegular(path string) ([]byte, error) {
	f, size, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than the size tells a file that grew from one read
	// in full.
	b := make([]byte, size+1)
	n, err := io.ReadFull(f, b)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return b[:n], nil
	}
	if err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(f)
	return append(b, rest...), err
}

// notRegular is the refusal of something that is not a regular file.
func notRegular(path string, m fs.FileMode) error {
	return &Error{Kind: KindForeign, Msg: fmt.Sprintf(
		"refusing %s: it is %s, not a file pgwarm-wal wrote (pgwarm-wal writes only regular files and follows no links inside the archive); find out who created it, then remove it",
		path, describeMode(m))}
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// modeOf maps the file type bits of a stat to an fs.FileMode.
func modeOf(mode uint32) fs.FileMode {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	case syscall.S_IFDIR:
		return fs.ModeDir
	}
	return fs.ModeIrregular
}
