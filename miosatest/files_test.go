package miosatest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// fileBytes holds each of the 256 byte values, four times.
var fileBytes = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// newFilesMachine starts a server and a running machine on it.
func newFilesMachine(t *testing.T, opts ...miosatest.Option) (*miosatest.Server, *miosa.Client, string) {
	t.Helper()
	srv := miosatest.NewServer(t, append([]miosatest.Option{miosatest.WithBootDelay(0)}, opts...)...)
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	return srv, client, c.ID
}

func TestFiles_UploadListDownloadDeleteRoundTrip(t *testing.T) {
	for _, name := range []string{"/home/user/a b/ünï 日本.bin", "/tmp/what?#.txt", "rel/x.bin"} {
		t.Run(name, func(t *testing.T) {
			srv, client, id := newFilesMachine(t)
			ctx := t.Context()
			require.NoError(t, client.Files.Upload(ctx, id, name, bytes.NewReader(fileBytes), miosa.FileUploadParams{}))

			uploads := srv.RequestsTo("POST", "/computers/*/files/upload")
			require.Len(t, uploads, 1)
			assert.Nil(t, uploads[0].Body, "an upload streams to disk")
			var names []string
			for _, p := range uploads[0].Parts {
				names = append(names, p.Name)
			}
			assert.Equal(t, []string{"path", "create_dirs", "file"}, names)
			assert.Equal(t, name, uploads[0].Parts[0].Value)
			assert.EqualValues(t, len(fileBytes), uploads[0].Parts[2].Size)

			var buf bytes.Buffer
			n, err := client.Files.Download(ctx, id, name, &buf)
			require.NoError(t, err)
			assert.EqualValues(t, len(fileBytes), n)
			assert.Equal(t, fileBytes, buf.Bytes())

			dir := name[:strings.LastIndexByte(name, '/')]
			entries, err := client.Files.List(ctx, id, dir)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			assert.Equal(t, miosa.FileTypeFile, entries[0].Type)
			assert.Equal(t, name[len(dir)+1:], entries[0].Name)
			assert.EqualValues(t, len(fileBytes), entries[0].Size)
			assert.False(t, entries[0].ModifiedAt.IsZero())

			require.NoError(t, client.Files.Delete(ctx, id, name, miosa.FileDeleteParams{}))
			_, err = client.Files.Download(ctx, id, name, io.Discard)
			assert.ErrorIs(t, err, miosa.ErrNotFound)
		})
	}
}

func TestFiles_LargerThanAnyRequestCap(t *testing.T) {
	_, client, id := newFilesMachine(t)
	big := bytes.Repeat(fileBytes, 10<<10) // 10 MiB
	require.NoError(t, client.Files.Upload(t.Context(), id, "big.bin", bytes.NewReader(big), miosa.FileUploadParams{}))
	var buf bytes.Buffer
	_, err := client.Files.Download(t.Context(), id, "big.bin", &buf)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, buf.Bytes()))
}

func TestFiles_DirectoriesAndRecursiveDelete(t *testing.T) {
	srv, client, id := newFilesMachine(t)
	ctx := t.Context()
	require.NoError(t, srv.WriteFile(id, "/home/user/proj/src/main.py", []byte("print(1)\n")))

	entries, err := client.Files.List(ctx, id, "")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.True(t, entries[0].IsDir())
	assert.Equal(t, "/home/user/proj", entries[0].Path)

	err = client.Files.Upload(ctx, id, "/nowhere/x", strings.NewReader("x"), miosa.FileUploadParams{NoCreateDirs: true})
	assert.ErrorIs(t, err, miosa.ErrNotFound, "no directory is created without create_dirs")

	err = client.Files.Delete(ctx, id, "/home/user/proj", miosa.FileDeleteParams{})
	assert.ErrorIs(t, err, miosa.ErrConflict, "a directory with files needs Recursive")
	require.NoError(t, client.Files.Delete(ctx, id, "/home/user/proj", miosa.FileDeleteParams{Recursive: true}))
	entries, err = client.Files.List(ctx, id, "")
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestFiles_MachineMustBeRunning(t *testing.T) {
	srv, client, id := newFilesMachine(t)
	require.NoError(t, srv.SetStatus(id, miosa.StatusStopped))
	err := client.Files.Upload(t.Context(), id, "/x", strings.NewReader("x"), miosa.FileUploadParams{})
	assert.ErrorIs(t, err, miosa.ErrConflict)
	_, err = client.Files.List(t.Context(), "cmp_missing", "")
	assert.ErrorIs(t, err, miosa.ErrNotFound)
}

// brokenReader yields some bytes, then fails.
type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("broken")
	}
	k := min(len(p), b.n)
	b.n -= k
	copy(p, bytes.Repeat([]byte{'x'}, k))
	return k, nil
}

func TestFiles_UploadCutOffLeavesTheOldFile(t *testing.T) {
	srv, client, id := newFilesMachine(t)
	require.NoError(t, srv.WriteFile(id, "keep.txt", []byte("old")))
	err := client.Files.Upload(t.Context(), id, "keep.txt", &brokenReader{n: 100 << 10}, miosa.FileUploadParams{})
	require.Error(t, err)
	got, err := srv.ReadFile(id, "keep.txt")
	require.NoError(t, err)
	assert.Equal(t, "old", string(got))
}

func TestFiles_FaultsOnDownloads(t *testing.T) {
	t.Run("503 before the first byte is retried", func(t *testing.T) {
		srv, client, id := newFilesMachine(t)
		require.NoError(t, srv.WriteFile(id, "f", fileBytes))
		srv.Inject(miosatest.Fault{Path: "/computers/*/files/download", Status: http.StatusServiceUnavailable})
		var buf bytes.Buffer
		_, err := client.Files.Download(t.Context(), id, "f", &buf)
		require.NoError(t, err)
		assert.Equal(t, fileBytes, buf.Bytes())
		assert.Len(t, srv.RequestsTo("GET", "/computers/*/files/download"), 2)
	})
	t.Run("a drop mid-download is an error with the count", func(t *testing.T) {
		srv, client, id := newFilesMachine(t)
		require.NoError(t, srv.WriteFile(id, "f", fileBytes))
		srv.Inject(miosatest.Fault{Path: "/computers/*/files/download", Drop: miosatest.DropMidAnswer})
		var buf bytes.Buffer
		n, err := client.Files.Download(t.Context(), id, "f", &buf)
		require.Error(t, err)
		assert.EqualValues(t, len(fileBytes)/2, n)
		assert.Equal(t, fileBytes[:n], buf.Bytes())
		assert.Contains(t, err.Error(), "after 512 of 1024 bytes")
		assert.Len(t, srv.RequestsTo("GET", "/computers/*/files/download"), 1)
	})
	t.Run("a drop mid-download over HTTP/2", func(t *testing.T) {
		srv, client, id := newFilesMachine(t, miosatest.WithTLS())
		require.NoError(t, srv.WriteFile(id, "f", fileBytes))
		srv.Inject(miosatest.Fault{Path: "/computers/*/files/download", Drop: miosatest.DropMidAnswer})
		n, err := client.Files.Download(t.Context(), id, "f", io.Discard)
		require.Error(t, err)
		assert.EqualValues(t, len(fileBytes)/2, n)
	})
}

func TestFiles_ExportURLServesTheFileWithoutTheKey(t *testing.T) {
	srv, client, id := newFilesMachine(t)
	require.NoError(t, srv.WriteFile(id, "report.csv", fileBytes))
	exp, err := client.Files.Export(t.Context(), id, "report.csv")
	require.NoError(t, err)
	assert.False(t, exp.ExpiresAt.IsZero())

	resp, err := srv.HTTPClient().Get(exp.URL) // no Authorization header
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, fileBytes, body)
	assert.Empty(t, srv.RequestsTo("GET", "/exports/*")[0].Header.Get("Authorization"))

	_, err = client.Files.Export(t.Context(), id, "missing.csv")
	assert.ErrorIs(t, err, miosa.ErrNotFound)
}

func TestFiles_LaterGoSDKForms(t *testing.T) {
	srv, _, id := newFilesMachine(t)
	require.NoError(t, srv.WriteFile(id, "/home/user/d/a.txt", []byte("abc")))
	call := func(method, target, body string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
		resp, err := srv.HTTPClient().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := call("GET", "/computers/"+id+"/files?path=/home/user", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var listing struct {
		Path    string `json:"path"`
		Entries []struct {
			Name  string `json:"name"`
			Path  string `json:"path"`
			Size  int64  `json:"size"`
			IsDir bool   `json:"is_dir"`
		} `json:"entries"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&listing))
	assert.Equal(t, "/home/user", listing.Path)
	require.Len(t, listing.Entries, 1)
	assert.Equal(t, "d", listing.Entries[0].Name)
	assert.Equal(t, "/home/user/d", listing.Entries[0].Path)
	assert.True(t, listing.Entries[0].IsDir)

	resp = call("DELETE", "/computers/"+id+"/files", `{"path":"/home/user/d","recursive":true}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err := srv.ReadFile(id, "/home/user/d/a.txt")
	assert.Error(t, err)
}

func TestFiles_LocalShellSeesTheSameFiles(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no shell")
	}
	_, client, id := newFilesMachine(t, miosatest.WithLocalShell())
	ctx := t.Context()
	require.NoError(t, client.Files.Upload(ctx, id, "/home/user/in.txt", strings.NewReader("hello\n"), miosa.FileUploadParams{}))
	res, err := client.Exec.Run(ctx, id, miosa.ExecParams{Command: "mkdir -p out && tr a-z A-Z < in.txt > out/up.txt"})
	require.NoError(t, err)
	require.NoError(t, res.Err())
	var buf bytes.Buffer
	_, err = client.Files.Download(ctx, id, "/home/user/out/up.txt", &buf)
	require.NoError(t, err)
	assert.Equal(t, "HELLO\n", buf.String())
}
