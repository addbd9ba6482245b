package miosatest

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The native sandbox lane's two file routes, which the newer official Go
// SDK uses: a recursive listing and a batch of small writes. They serve the
// same file tree as /computers/{id}/files.

const (
	defaultTreeDepth = 3
	maxTreeDepth     = 10
	// maxTreeNodes bounds one tree answer.
	maxTreeNodes = 10_000
)

// treeNode is one entry of a tree answer, as the official fixture shows it:
// type "dir" or "file".
type treeNode struct {
	Path       string     `json:"path"`
	Type       string     `json:"type"`
	Name       string     `json:"name"`
	Size       *int64     `json:"size,omitempty"`
	ModifiedAt string     `json:"modified_at,omitempty"`
	Children   []treeNode `json:"children,omitempty"`
}

// fileTree serves GET /sandboxes/{id}/files/tree?path=&depth=: the entry at
// path (default /home/user) and, for a directory, its entries down to depth
// levels (default 3, at most 10), sorted by name, answered bare as the
// official fixture shows.
func (e *engine) fileTree(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	remote := q.Get("path")
	if remote == "" {
		remote = defaultWorkingDir
	}
	depth, ok := positiveQuery(w, q.Get("depth"), "depth", defaultTreeDepth)
	if !ok {
		return
	}
	host, ok := e.machineFile(w, r, remote)
	if !ok {
		return
	}
	budget := maxTreeNodes
	node, err := describeTree(host, path.Clean("/"+remote), min(depth, maxTreeDepth), &budget)
	if err != nil {
		fileError(w, remote, err)
		return
	}
	writeJSON(w, http.StatusOK, node)
}

// describeTree describes the file at host (remote on the machine) and, for
// a directory, depth levels below it, as long as budget lasts.
func describeTree(host, remote string, depth int, budget *int) (treeNode, error) {
	info, err := os.Lstat(host)
	if err != nil {
		return treeNode{}, err
	}
	*budget--
	node := treeNode{Path: remote, Name: path.Base(remote), Type: "file", ModifiedAt: timeString(info.ModTime())}
	if !info.IsDir() {
		size := info.Size()
		node.Size = &size
		return node, nil
	}
	node.Type = "dir"
	if depth == 0 {
		return node, nil
	}
	entries, err := os.ReadDir(host)
	if err != nil {
		return treeNode{}, err
	}
	for _, d := range entries {
		if *budget <= 0 {
			break
		}
		if strings.HasPrefix(d.Name(), ".upload-") {
			continue
		}
		child, err := describeTree(filepath.Join(host, d.Name()), path.Join(remote, d.Name()), depth-1, budget)
		if err == nil { // an entry removed while it is read is left out
			node.Children = append(node.Children, child)
		}
	}
	return node, nil
}

// writeMany serves POST /sandboxes/{id}/files/write-many
// {"files": [{"path", "content_base64"}]}: each file is written as an upload
// writes one, creating its directories; the answer, bare as the official
// fixture shows, lists what was "written" (path and size) and what "failed"
// (path and error).
func (e *engine) writeMany(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, []string{"files"})
	if !ok {
		return
	}
	var files []struct {
		Path          string `json:"path"`
		ContentBase64 string `json:"content_base64"`
	}
	present, ok := field(w, fields, "files", &files, `a list of {"path", "content_base64"}`)
	if !ok {
		return
	}
	if !present || len(files) == 0 {
		invalid(w, "files is required")
		return
	}
	id := r.PathValue("id")
	if !e.running(w, "computer", id) {
		return
	}
	written, failed := []map[string]any{}, []map[string]any{}
	for _, f := range files {
		data, err := base64.StdEncoding.DecodeString(f.ContentBase64)
		switch {
		case strings.TrimSpace(f.Path) == "":
			failed = append(failed, map[string]any{"path": f.Path, "error": "path is required"})
			continue
		case err != nil:
			failed = append(failed, map[string]any{"path": f.Path, "error": "content_base64 is not base64"})
			continue
		}
		host, err := e.shell.hostPath(id, f.Path)
		if err == nil {
			_, err = replaceFile(host, bytes.NewReader(data), true, func() error { return nil })
		}
		if err != nil {
			failed = append(failed, map[string]any{"path": f.Path, "error": err.Error()})
			continue
		}
		written = append(written, map[string]any{"path": f.Path, "size": len(data)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"written": written, "failed": failed})
}
