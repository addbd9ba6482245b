package miosatest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Each machine's files live on this host, in the directory the local shell
// runs commands in, so uploads, downloads and commands see one tree. File
// bytes stream between the connection and the disk; nothing holds a file
// in memory.

const (
	// uploadPath is the upload endpoint's pattern, relative to the base path.
	uploadPath = "/computers/*/files/upload"
	// exportPath prefixes the signed URLs of exported files. It lies
	// outside the API's base path, as a storage host's URL would.
	exportPath = "/exports/"
	// exportTTL is how long an exported URL serves its file.
	exportTTL = time.Hour
	// maxFormField caps a text field of an upload form.
	maxFormField = 4 << 10
)

// FormPart is one part of a file upload's multipart form as the server read
// it: its field Name, the FileName and ContentType it declared, a text
// field's Value and the part's Size in bytes. Request.Parts lists them in
// the order they arrived.
type FormPart struct {
	// Name is the part's form field name ("path", "create_dirs", "file").
	Name string
	// FileName is the filename the part declared, for a file part.
	FileName string
	// ContentType is the part's Content-Type header.
	ContentType string
	// Value is a text field's value; empty for a file part.
	Value string
	// Size is the part's length in bytes.
	Size int64
}

// isUpload reports whether a request is a file upload, whose body the
// engine must not read ahead of the handler.
func isUpload(method, rel string) bool {
	return method == http.MethodPost && matchPath(uploadPath, rel)
}

// machineFile resolves the query's or body's remote path on a running
// machine to its place on this host. It answers the refusal itself and
// reports false.
func (e *engine) machineFile(w http.ResponseWriter, r *http.Request, remote string) (string, bool) {
	id := r.PathValue("id")
	if !e.running(w, "computer", id) {
		return "", false
	}
	if strings.TrimSpace(remote) == "" {
		writeError(w, http.StatusBadRequest, "INVALID", "path is required")
		return "", false
	}
	host, err := e.shell.hostPath(id, remote)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "preparing the machine's files: "+err.Error())
		return "", false
	}
	return host, true
}

// fileError answers a file system failure with the status an API would.
func fileError(w http.ResponseWriter, remote string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("%s: no such file or directory", remote))
	case errors.Is(err, errIsDir):
		writeError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("%s is a directory", remote))
	case errors.Is(err, errNotEmpty):
		writeError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("%s is a directory that is not empty: delete it recursively", remote))
	default:
		writeError(w, http.StatusInternalServerError, "INTERNAL", fmt.Sprintf("%s: %v", remote, err))
	}
}

var (
	errIsDir    = errors.New("is a directory")
	errNotEmpty = errors.New("directory not empty")
)

// uploadFile serves POST /computers/{id}/files/upload: a multipart form
// with "path", then optionally "create_dirs" (default true), then "file",
// in that order. The file streams into a temporary file beside its target,
// which replaces the target only once the form ended well: an upload cut
// off halfway leaves the old file as it was.
func (e *engine) uploadFile(w http.ResponseWriter, r *http.Request) {
	form, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID", "the body must be multipart/form-data: "+err.Error())
		return
	}
	var (
		parts      []FormPart
		remote     string
		createDirs = true
	)
	defer func() { e.log.setParts(w.Header().Get("X-Request-ID"), parts) }()
	for {
		part, err := form.NextPart()
		if err != nil {
			msg := "the form ended before its file part"
			if err != io.EOF {
				msg = "reading the form: " + err.Error()
			}
			writeError(w, http.StatusBadRequest, "INVALID", msg)
			return
		}
		p := FormPart{Name: part.FormName(), ContentType: part.Header.Get("Content-Type")}
		if p.Name != "file" {
			value, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
			p.Value, p.Size = string(value), int64(len(value))
			parts = append(parts, p)
			switch {
			case err != nil:
				writeError(w, http.StatusBadRequest, "INVALID", "reading the form: "+err.Error())
				return
			case len(value) > maxFormField:
				invalid(w, "form field %q exceeds %d bytes", p.Name, maxFormField)
				return
			case p.Name == "path" && remote == "":
				remote = p.Value
			case p.Name == "create_dirs" && remote != "":
				if createDirs, err = strconv.ParseBool(p.Value); err != nil {
					invalid(w, "create_dirs must be true or false, not %q", p.Value)
					return
				}
			default:
				invalid(w, "unexpected form field %q: the parts are path, create_dirs and file, in that order", p.Name)
				return
			}
			continue
		}
		// The raw parameter: FileName would reduce it to a base name.
		p.FileName = part.FileName()
		if remote == "" {
			parts = append(parts, p)
			invalid(w, "the form's path must come before its file")
			return
		}
		host, ok := e.machineFile(w, r, remote)
		if !ok {
			parts = append(parts, p)
			return
		}
		// The file replaces the old one only once the form has ended
		// well: a body cut off, or one with more after the file, does not.
		p.Size, err = replaceFile(host, part, createDirs, func() error {
			if _, err := form.NextPart(); err != io.EOF {
				return errFormGoesOn
			}
			return nil
		})
		parts = append(parts, p)
		switch {
		case r.Context().Err() != nil:
		case errors.Is(err, errFormGoesOn):
			invalid(w, "the form must end after its file part")
		case err != nil:
			fileError(w, remote, err)
		default:
			writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		}
		return
	}
}

var errFormGoesOn = errors.New("the form goes on after its file")

// replaceFile writes src to a temporary file beside host and renames it
// over host once src has ended and ended says the rest went well too.
func replaceFile(host string, src io.Reader, createDirs bool, ended func() error) (int64, error) {
	if info, err := os.Stat(host); err == nil && info.IsDir() {
		return 0, errIsDir
	}
	dir := filepath.Dir(host)
	if createDirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, src)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = ended()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), host)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return n, err
}

// downloadFile serves GET /computers/{id}/files/download?path=: the raw
// bytes with their Content-Length, streamed from disk.
func (e *engine) downloadFile(w http.ResponseWriter, r *http.Request) {
	remote := r.URL.Query().Get("path")
	host, ok := e.machineFile(w, r, remote)
	if !ok {
		return
	}
	serveFile(w, remote, host)
}

// serveFile answers with the file at host, streamed.
func serveFile(w http.ResponseWriter, remote, host string) {
	f, err := os.Open(host)
	if err != nil {
		fileError(w, remote, err)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err == nil && info.IsDir() {
		err = errIsDir
	}
	if err != nil {
		fileError(w, remote, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size(), 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, f)
}

// fileEntry is a directory entry in the seed's form.
type fileEntry struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Type        string `json:"type"`
	Size        int64  `json:"size"`
	ModifiedAt  string `json:"modified_at"`
	Permissions string `json:"permissions"`
}

// listFiles serves GET /computers/{id}/files/list?path= (default
// /home/user): {"data": [entries]}, sorted by name.
func (e *engine) listFiles(w http.ResponseWriter, r *http.Request) {
	if _, entries, ok := e.readDir(w, r); ok {
		writeList(w, entries, nil)
	}
}

// sdkEntry is a directory entry in the later Go SDK's form.
type sdkEntry struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	IsDir      bool   `json:"is_dir"`
	ModifiedAt string `json:"modified_at"`
}

// listFilesEntries serves GET /computers/{id}/files?path=, the later Go
// SDK's listing: {"path": dir, "entries": [...]}.
func (e *engine) listFilesEntries(w http.ResponseWriter, r *http.Request) {
	dir, entries, ok := e.readDir(w, r)
	if !ok {
		return
	}
	out := make([]sdkEntry, len(entries))
	for i, f := range entries {
		out[i] = sdkEntry{Name: f.Name, Path: f.Path, Size: f.Size, IsDir: f.Type == "directory", ModifiedAt: f.ModifiedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": dir, "entries": out})
}

// readDir describes, in the seed's form and sorted by name, the entries of
// the directory the query's path names (default /home/user), answering a
// refusal itself. Upload temporaries, and entries removed while it reads,
// are not listed; a symbolic link is described, not followed.
func (e *engine) readDir(w http.ResponseWriter, r *http.Request) (string, []fileEntry, bool) {
	dir := r.URL.Query().Get("path")
	if dir == "" {
		dir = defaultWorkingDir
	}
	host, ok := e.machineFile(w, r, dir)
	if !ok {
		return "", nil, false
	}
	dirEntries, err := os.ReadDir(host)
	if err != nil {
		fileError(w, dir, err)
		return "", nil, false
	}
	entries := make([]fileEntry, 0, len(dirEntries))
	for _, d := range dirEntries {
		info, err := d.Info()
		if err != nil || strings.HasPrefix(d.Name(), ".upload-") {
			continue
		}
		kind := "file"
		switch {
		case info.IsDir():
			kind = "directory"
		case info.Mode()&fs.ModeSymlink != 0:
			kind = "symlink"
		}
		entries = append(entries, fileEntry{
			Name: d.Name(), Path: path.Join(dir, d.Name()), Type: kind, Size: info.Size(),
			ModifiedAt: timeString(info.ModTime()), Permissions: info.Mode().Perm().String()[1:],
		})
	}
	return dir, entries, true
}

// deleteFile serves DELETE /computers/{id}/files with path and recursive in
// the query (the seed's form) or in a JSON body (the later Go SDK's).
func (e *engine) deleteFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	remote := q.Get("path")
	recursive, _ := strconv.ParseBool(q.Get("recursive"))
	if remote == "" {
		fields, ok := decodeFields(w, r)
		if !ok {
			return
		}
		if _, ok := field(w, fields, "path", &remote, "a string"); !ok {
			return
		}
		if _, ok := field(w, fields, "recursive", &recursive, "a boolean"); !ok {
			return
		}
	}
	host, ok := e.machineFile(w, r, remote)
	if !ok {
		return
	}
	if path.Clean("/"+remote) == "/" {
		invalid(w, "refusing to delete the machine's root directory")
		return
	}
	info, err := os.Lstat(host)
	switch {
	case err != nil:
	case !info.IsDir() || !recursive:
		if err = os.Remove(host); err != nil && info.IsDir() {
			err = errNotEmpty
		}
	default:
		err = os.RemoveAll(host)
	}
	if err != nil {
		fileError(w, remote, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// exportStore holds the signed URLs handed out, by token.
type exportStore struct {
	mu     sync.Mutex
	tokens map[string]export
}

type export struct {
	machineID, remote string
	expires           time.Time
}

// exportFile serves POST /computers/{id}/files/export {"path"}: a URL on
// this server that serves the file without the key until it expires,
// answered bare, {"url", "expires_at"}, as the official fixtures show.
func (e *engine) exportFile(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	var remote string
	if _, ok := field(w, fields, "path", &remote, "a string"); !ok {
		return
	}
	host, ok := e.machineFile(w, r, remote)
	if !ok {
		return
	}
	if info, err := os.Stat(host); err != nil || info.IsDir() {
		fileError(w, remote, cmp.Or(err, errIsDir))
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	x := export{machineID: r.PathValue("id"), remote: remote, expires: e.now().Add(exportTTL)}
	e.exports.mu.Lock()
	if e.exports.tokens == nil {
		e.exports.tokens = map[string]export{}
	}
	e.exports.tokens[token] = x
	e.exports.mu.Unlock()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	e.write(w, bareReply(http.StatusOK, map[string]string{
		"url":        scheme + "://" + r.Host + exportPath + token,
		"expires_at": timeString(x.expires),
	}))
}

// serveExport serves GET /exports/{token}: the exported file, to anyone
// holding the URL, until it expires.
func (e *engine) serveExport(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.URL.Path, exportPath)
	e.exports.mu.Lock()
	x, ok := e.exports.tokens[token]
	e.exports.mu.Unlock()
	if r.Method != http.MethodGet || !ok || e.now().After(x.expires) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such export, or it expired")
		return
	}
	host, err := e.shell.hostPath(x.machineID, x.remote)
	if err != nil {
		fileError(w, x.remote, err)
		return
	}
	serveFile(w, x.remote, host)
}

// WriteFile puts data at remote on the machine, as an upload would,
// creating its directories.
func (e *engine) WriteFile(machineID, remote string, data []byte) error {
	if err := e.knownMachine(machineID); err != nil {
		return err
	}
	host, err := e.shell.hostPath(machineID, remote)
	if err != nil {
		return err
	}
	_, err = replaceFile(host, bytes.NewReader(data), true, func() error { return nil })
	return err
}

// ReadFile returns the content of the machine's file at remote.
func (e *engine) ReadFile(machineID, remote string) ([]byte, error) {
	if err := e.knownMachine(machineID); err != nil {
		return nil, err
	}
	host, err := e.shell.hostPath(machineID, remote)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(host)
}

func (e *engine) knownMachine(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.machines[id] == nil {
		return fmt.Errorf("computer %q not found", id)
	}
	return nil
}

// setParts records the parts of the upload the log knows by id.
func (l *requestLog) setParts(id string, parts []FormPart) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.entries) - 1; i >= 0; i-- {
		if l.entries[i].ID == id {
			l.entries[i].Parts = parts
			return
		}
	}
}

// WriteFile puts data at path on a computer or sandbox, as an upload would,
// creating missing directories; a relative path is taken from /home/user.
// Commands run with WithLocalShell see the file. It fails for an unknown id.
func (s *Server) WriteFile(computerID, path string, data []byte) error {
	if err := s.engine.WriteFile(computerID, path, data); err != nil {
		return fmt.Errorf("miosatest: WriteFile: %w", err)
	}
	return nil
}

// ReadFile returns the content of the file at path on a computer or
// sandbox: what an upload or a local command left there.
func (s *Server) ReadFile(computerID, path string) ([]byte, error) {
	data, err := s.engine.ReadFile(computerID, path)
	if err != nil {
		return nil, fmt.Errorf("miosatest: ReadFile: %w", err)
	}
	return data, nil
}
