package miosa

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// FileType is the kind of a file system entry. Servers may send kinds
// beyond the constants; they are kept as sent.
type FileType string

// The kinds of entry every server sends.
const (
	FileTypeFile      FileType = "file"      // FileTypeFile is a regular file.
	FileTypeDirectory FileType = "directory" // FileTypeDirectory is a directory.
	FileTypeSymlink   FileType = "symlink"   // FileTypeSymlink is a symbolic link.
)

// FileInfo is one entry of a directory listing.
type FileInfo struct {
	Name string
	// Path is the entry's absolute path; when the server leaves it out, the
	// listed directory joined with Name.
	Path string
	Type FileType
	Size int64
	// ModifiedAt is zero when the server did not say.
	ModifiedAt time.Time
	// Permissions is the mode as the server wrote it, e.g. "rw-r--r--".
	Permissions string
	// Raw is the entry exactly as the server sent it.
	Raw json.RawMessage
}

// IsDir reports whether the entry is a directory.
func (f FileInfo) IsDir() bool { return f.Type == FileTypeDirectory }

// UnmarshalJSON decodes an entry in either form servers send: with a
// "type", or with "is_dir" (a directory when true). A negative size is an
// error.
func (f *FileInfo) UnmarshalJSON(data []byte) error {
	var v struct {
		Name        string          `json:"name"`
		Path        string          `json:"path"`
		Type        FileType        `json:"type"`
		IsDir       *bool           `json:"is_dir"`
		Size        json.RawMessage `json:"size"`
		ModifiedAt  wire.Time       `json:"modified_at"`
		Permissions string          `json:"permissions"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = FileInfo{Name: v.Name, Path: v.Path, Type: v.Type, ModifiedAt: v.ModifiedAt.Time, Permissions: v.Permissions}
	if f.Name == "" && f.Path == "" {
		return errors.New("a file entry has neither a name nor a path")
	}
	if f.Name == "" {
		f.Name = path.Base(f.Path)
	}
	if f.Type == "" && v.IsDir != nil {
		f.Type = FileTypeFile
		if *v.IsDir {
			f.Type = FileTypeDirectory
		}
	}
	if !isJSONNull(v.Size) {
		size, ok := jsonNumber(v.Size)
		if !ok || size < 0 || size > maxFileSize {
			return fmt.Errorf("file %q: size %.40s is not a byte count", f.Name, v.Size)
		}
		f.Size = int64(size)
	}
	f.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// maxFileSize is the largest size a listing may claim: 2^53, beyond which a
// JSON number no longer counts bytes exactly.
const maxFileSize = 1 << 53

// FileExport is a signed URL that serves one file without the API key,
// until ExpiresAt.
type FileExport struct {
	URL string
	// ExpiresAt is zero when the server did not say.
	ExpiresAt time.Time
	// Raw is the answer exactly as the server sent it.
	Raw json.RawMessage
}

// UnmarshalJSON decodes an export and keeps the raw object in Raw. An
// answer without a URL is an error.
func (e *FileExport) UnmarshalJSON(data []byte) error {
	var v struct {
		URL       string    `json:"url"`
		ExpiresAt wire.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.URL == "" {
		return errors.New("the export has no url")
	}
	*e = FileExport{URL: v.URL, ExpiresAt: v.ExpiresAt.Time, Raw: append(json.RawMessage(nil), data...)}
	return nil
}

// FileUploadParams tunes an upload. The zero value creates missing parent
// directories.
type FileUploadParams struct {
	// NoCreateDirs makes the upload fail when the remote file's directory
	// does not exist, instead of creating it.
	NoCreateDirs bool
}

// FileDeleteParams tunes a delete.
type FileDeleteParams struct {
	// Recursive deletes a directory with everything in it; without it,
	// only files and empty directories can be deleted.
	Recursive bool
}

// defaultListDir is the directory List lists when given none: the
// machine's home.
const defaultListDir = "/home/user"

// FilesService moves files in and out of computers and sandboxes. A
// computer id and a sandbox id are interchangeable here. File bytes are
// streamed, never held whole in memory, and a transfer is bounded by the
// caller's context, not by WithRequestTimeout or WithMaxResponseSize.
type FilesService service

// Upload writes the bytes of r to remotePath on the machine
// (POST /computers/{id}/files/upload, a multipart form), replacing any file
// there and creating missing directories unless params.NoCreateDirs. r is
// streamed from its current position to its end, never read whole into
// memory.
//
// When r is an io.Seeker, the upload is retried like a read (on 5xx, 429
// and network failures), each attempt seeking r back to where it stood when
// the call began; its end is taken when the call begins too (and sent as
// the form's Content-Length), and a reader that then ends early fails the
// call. Any other reader is sent once, chunked, and never retried.
//
// Success needs the whole form sent: a 2xx answered before its last byte
// left (the server cannot have stored the whole file) is an error matching
// no sentinel, retried as a failure is when r can seek. An
// upload the server stops taking bytes of for 30 seconds fails (a slow r
// does not count). A reader that fails fails the call with an error saying
// how many of its bytes were read. Upload does not return while a Read of r
// is in progress, and reads no more of it afterwards. So a Read that blocks
// holds the call, even past its context (Go's HTTP client also waits for
// it): make r's Read return when you cancel, e.g. by closing the pipe it
// reads.
func (s *FilesService) Upload(ctx context.Context, computerID, remotePath string, r io.Reader, params FileUploadParams, opts ...Option) error {
	p, err := computerPath(computerID, "/files/upload")
	if err != nil {
		return err
	}
	if err := checkRemotePath(remotePath); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("%w: upload reader is nil", ErrInvalidParams)
	}
	src, err := newUploadSource(r, remotePath, !params.NoCreateDirs)
	if err != nil {
		return fmt.Errorf("miosa: POST %s: not sent: %w", p, err)
	}
	op := call{method: http.MethodPost, path: p, upload: src.body, idempotent: src.seeker != nil}
	if src.seeker == nil {
		// Its bytes cannot be read a second time.
		opts = append(opts[:len(opts):len(opts)], WithMaxRetries(0))
	}
	_, err = s.client.send(ctx, op, opts)
	if readErr := src.close(); readErr != nil {
		// The reader's own failure is the cause, whatever the transport
		// made of it: the form was never completed.
		return errorf("miosa: POST %s: %w", p, readErr)
	}
	return err
}

// uploadSource produces the multipart body of one upload for each attempt:
// the fields and the file part's header, the bytes of r, and the closing
// boundary, concatenated without a goroutine or a copy of the file.
type uploadSource struct {
	r           io.Reader
	seeker      io.Seeker // nil when r cannot seek back
	start, size int64     // r's position when the call began, and its bytes from there; size -1 when unknown
	head, tail  []byte
	contentType string

	// mu is held during every Read of r, so that the next attempt and the
	// end of the call wait for a read still in progress.
	mu      sync.Mutex
	attempt int   // the attempt whose body may read r; -1 once the call ended
	read    int64 // bytes of r read by that attempt
	err     error // r's failure: it ends the call
}

func newUploadSource(r io.Reader, remotePath string, createDirs bool) (*uploadSource, error) {
	var head bytes.Buffer
	form := multipart.NewWriter(&head)
	// Writes to a bytes.Buffer cannot fail.
	_ = form.WriteField("path", remotePath)
	_ = form.WriteField("create_dirs", strconv.FormatBool(createDirs))
	_, _ = form.CreateFormFile("file", path.Base(remotePath))
	u := &uploadSource{
		r: r, size: -1,
		head: head.Bytes(), tail: []byte("\r\n--" + form.Boundary() + "--\r\n"),
		contentType: form.FormDataContentType(),
	}
	seeker, ok := r.(io.Seeker)
	if !ok {
		return u, nil
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		// A pipe or terminal behind an *os.File: it cannot seek back.
		return u, nil
	}
	end, err := seeker.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = seeker.Seek(start, io.SeekStart)
	}
	if err != nil {
		return nil, fmt.Errorf("finding the end of the file to upload: %w", err)
	}
	u.seeker, u.start, u.size = seeker, start, max(end-start, 0)
	return u, nil
}

// body is call.upload: the form for one more attempt, with r back where it
// stood when the call began. Its length is known when r's size is.
func (u *uploadSource) body() (uploadBody, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return uploadBody{}, u.err
	}
	if u.attempt > 0 && u.seeker != nil {
		if _, err := u.seeker.Seek(u.start, io.SeekStart); err != nil {
			return uploadBody{}, fmt.Errorf("seeking the file to upload back to its start: %w", err)
		}
	}
	u.attempt++
	u.read = 0
	file := &uploadReader{src: u, attempt: u.attempt}
	length := int64(-1)
	if u.size >= 0 {
		length = int64(len(u.head)) + u.size + int64(len(u.tail))
	}
	return uploadBody{
		r:           io.MultiReader(bytes.NewReader(u.head), file, bytes.NewReader(u.tail)),
		contentType: u.contentType,
		length:      length,
	}, nil
}

// close ends the call's use of r, waiting for a Read in progress, and
// returns r's failure, if any.
func (u *uploadSource) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.attempt = -1
	return u.err
}

// errAttemptOver is what a transport still reading an attempt's body gets
// once that attempt was given up.
var errAttemptOver = errors.New("the upload attempt is over")

// uploadReader is the file part of one attempt's body.
type uploadReader struct {
	src     *uploadSource
	attempt int
}

func (f *uploadReader) Read(p []byte) (int, error) {
	u := f.src
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.attempt != f.attempt {
		return 0, errAttemptOver
	}
	if u.size >= 0 {
		if u.read == u.size {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), u.size-u.read)]
	}
	n, err := u.r.Read(p)
	u.read += int64(n)
	switch {
	case err == io.EOF && u.size >= 0 && u.read < u.size:
		err = fmt.Errorf("the file to upload ended after %d of its %d bytes: %w", u.read, u.size, io.ErrUnexpectedEOF)
	case err == nil || err == io.EOF:
		return n, err
	default:
		err = fmt.Errorf("reading the file to upload failed after %d bytes: %w", u.read, err)
	}
	// Final: the pipeline does not retry a body that could not be read.
	u.err = &bodyError{err}
	return n, u.err
}

// copyBuffers are the buffers downloads copy through: large enough that one
// read takes what the connection has, reused so that a download allocates
// nothing per chunk.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 128<<10)
	return &b
}}

// Download streams the file at remotePath on the machine into w
// (GET /computers/{id}/files/download) and returns the number of bytes
// written.
//
// It is retried like any read only until the first byte reaches w; a
// failure after that is returned with the count written, and w then holds
// a prefix of the file: a body that ends before its declared Content-Length
// is such a failure, never a short file without an error. So is a
// 206 Partial Content answer (no range is asked for), before anything is
// written. The transfer is bounded by ctx and ends when the server sends no
// byte for 30 seconds (time w spends in Write does not count); it is not
// bounded by WithRequestTimeout (which bounds only the wait for the answer's
// headers) or WithMaxResponseSize.
func (s *FilesService) Download(ctx context.Context, computerID, remotePath string, w io.Writer, opts ...Option) (int64, error) {
	p, err := computerPath(computerID, "/files/download")
	if err != nil {
		return 0, err
	}
	if err := checkRemotePath(remotePath); err != nil {
		return 0, err
	}
	if w == nil {
		return 0, fmt.Errorf("%w: download writer is nil", ErrInvalidParams)
	}
	var written int64
	op := call{method: http.MethodGet, path: p, query: url.Values{"path": {remotePath}},
		accept: anyMediaType, // the file's bytes, whatever their type
		consume: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusPartialContent {
				// No range was asked for: this is part of the file, and
				// writing it would leave a short file.
				return fmt.Errorf("the server answered %d %s (%s) to a request for the whole file; nothing was written",
					resp.StatusCode, http.StatusText(resp.StatusCode), capText(resp.Header.Get("Content-Range"), maxErrorCode))
			}
			var err error
			written, err = copyDownload(ctx, w, resp, transferStallLimit)
			return err
		}}
	_, err = s.client.send(ctx, op, opts)
	return written, err
}

// copyDownload copies one answer's body into w and returns the bytes
// written. It fails when the body ends before its declared length, when no
// byte arrives for stall, and when ctx ends; a failure before any byte was
// written wraps errNothingDelivered, so that the call may be sent again.
// Reads and writes go through one loop rather than io.Copy so that a
// failing reader (the network: worth another attempt) is told apart from a
// failing writer (the caller's: final), and so that only the server's
// silence counts as a stall: the watchdog is off while w writes, however
// long that takes.
func copyDownload(ctx context.Context, w io.Writer, resp *http.Response, stall time.Duration) (int64, error) {
	var stalled atomic.Bool
	// Closing the body is what unblocks a read waiting on the network.
	watchdog := time.AfterFunc(stall, func() {
		stalled.Store(true)
		resp.Body.Close()
	})
	defer watchdog.Stop()
	bufp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bufp)
	var written int64
	for {
		n, err := resp.Body.Read(*bufp)
		if n > 0 {
			watchdog.Stop()
			m, werr := w.Write((*bufp)[:n])
			watchdog.Reset(stall)
			written += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return written, fmt.Errorf("writing the download failed after %d bytes: %w", written, werr)
			}
		}
		switch {
		case err == nil:
			continue
		case err == io.EOF && (resp.ContentLength < 0 || written == resp.ContentLength):
			return written, nil
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		case stalled.Load():
			err = fmt.Errorf("no data for %s", stall)
		case ctx.Err() != nil:
			err = context.Cause(ctx)
		}
		if written == 0 {
			return 0, fmt.Errorf("the download broke off before its first byte: %w (%w)", err, errNothingDelivered)
		}
		of := ""
		if resp.ContentLength >= 0 {
			of = fmt.Sprintf(" of %d", resp.ContentLength)
		}
		return written, fmt.Errorf("the download broke off after %d%s bytes had been written: %w", written, of, err)
	}
}

// List returns the entries of the directory dir on the machine
// (GET /computers/{id}/files/list); dir "" lists /home/user. It changes
// nothing on the server and is retried freely. Decoding stops when ctx
// ends, and a listing of more entries than 64 MiB holds as Go values (over
// 550 000) is refused before any is decoded.
func (s *FilesService) List(ctx context.Context, computerID, dir string, opts ...Option) ([]FileInfo, error) {
	p, err := computerPath(computerID, "/files/list")
	if err != nil {
		return nil, err
	}
	dir = cmp.Or(dir, defaultListDir)
	if err := checkRemotePath(dir); err != nil {
		return nil, err
	}
	op := call{method: http.MethodGet, path: p, query: url.Values{"path": {dir}}}
	entries, _, err := sendForList[FileInfo](ctx, s.client, op, opts, "files", "entries")
	if err != nil {
		return nil, err
	}
	for i := range entries {
		if entries[i].Path == "" {
			entries[i].Path = path.Join(dir, entries[i].Name)
		}
	}
	return entries, nil
}

// Delete removes the file or directory at remotePath on the machine
// (DELETE /computers/{id}/files); a directory with anything in it only with
// params.Recursive. It is retried like any delete: when an answer was lost,
// the retry may find nothing there and fail with ErrNotFound.
func (s *FilesService) Delete(ctx context.Context, computerID, remotePath string, params FileDeleteParams, opts ...Option) error {
	p, err := computerPath(computerID, "/files")
	if err != nil {
		return err
	}
	if err := checkRemotePath(remotePath); err != nil {
		return err
	}
	q := url.Values{"path": {remotePath}, "recursive": {strconv.FormatBool(params.Recursive)}}
	_, err = s.client.send(ctx, call{method: http.MethodDelete, path: p, query: q}, opts)
	return err
}

// Export mints a signed URL that serves the file at remotePath without the
// API key, until the returned ExpiresAt (POST /computers/{id}/files/export).
// It only mints a URL, so it is retried like a read.
func (s *FilesService) Export(ctx context.Context, computerID, remotePath string, opts ...Option) (*FileExport, error) {
	p, err := computerPath(computerID, "/files/export")
	if err != nil {
		return nil, err
	}
	if err := checkRemotePath(remotePath); err != nil {
		return nil, err
	}
	body := map[string]string{"path": remotePath}
	return sendForObject[FileExport](ctx, s.client, call{method: http.MethodPost, path: p, body: body, idempotent: true}, opts)
}

// checkRemotePath refuses a path that names no file.
func checkRemotePath(p string) error {
	switch {
	case strings.TrimSpace(p) == "":
		return fmt.Errorf("%w: file path is empty", ErrInvalidParams)
	case strings.ContainsFunc(p, isControl):
		return fmt.Errorf("%w: file path %q contains control characters", ErrInvalidParams, p)
	}
	return nil
}
