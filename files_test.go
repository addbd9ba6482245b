package miosa

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// everyByte is a payload holding each of the 256 byte values, twice.
var everyByte = func() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// hardNames are remote paths that break naive quoting and escaping.
var hardNames = []string{
	"/home/user/plain.txt",
	"/home/user/with space/a b.txt",
	"/home/user/ünïcødé/日本語.bin",
	"/home/user/what?.txt",
	"/home/user/#hash#.txt",
	`/home/user/quote".txt`,
}

// filesServer starts a loopback server whose handler gets the 1-based
// number of each request, and a client for it that retries at once.
func filesServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int), opts ...Option) (*Client, *atomic.Int32) {
	t.Helper()
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, int(count.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return newTestClient(t, srv.URL+"/api/v1", opts...), &count
}

// uploadedForm is what a server read of one multipart upload.
type uploadedForm struct {
	names              []string
	path, createDirs   string
	fileName, fileType string
	content            []byte
	contentType        string
}

// readUpload reads r's multipart form part by part, streamed.
func readUpload(t *testing.T, r *http.Request) uploadedForm {
	t.Helper()
	mr, err := r.MultipartReader()
	require.NoError(t, err)
	var f uploadedForm
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return f
		}
		require.NoError(t, err)
		body, err := io.ReadAll(part)
		require.NoError(t, err)
		f.names = append(f.names, part.FormName())
		switch part.FormName() {
		case "path":
			f.path = string(body)
		case "create_dirs":
			f.createDirs = string(body)
		case "file":
			// The filename as sent, before Part.FileName reduces it.
			_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			require.NoError(t, err)
			f.fileName, f.fileType, f.content = params["filename"], part.Header.Get("Content-Type"), body
		}
	}
}

func TestFilesUpload_SendsTheFormPartsInOrderWithTheBytesUnchanged(t *testing.T) {
	for _, name := range hardNames {
		t.Run(name, func(t *testing.T) {
			var got uploadedForm
			client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				assert.Equal(t, "/api/v1/computers/cmp%2F1/files/upload", r.URL.EscapedPath())
				got = readUpload(t, r)
				got.contentType = r.Header.Get("Content-Type")
				w.WriteHeader(http.StatusCreated)
			})
			err := client.Files.Upload(t.Context(), "cmp/1", name, bytes.NewReader(everyByte), FileUploadParams{})
			require.NoError(t, err)
			assert.EqualValues(t, 1, count.Load())
			assert.Equal(t, []string{"path", "create_dirs", "file"}, got.names)
			assert.Equal(t, name, got.path)
			assert.Equal(t, "true", got.createDirs)
			assert.Equal(t, name[strings.LastIndexByte(name, '/')+1:], got.fileName)
			assert.Equal(t, "application/octet-stream", got.fileType)
			assert.Equal(t, everyByte, got.content)
			assert.True(t, strings.HasPrefix(got.contentType, "multipart/form-data; boundary="), got.contentType)
		})
	}
}

func TestFilesUpload_NoCreateDirsSendsFalse(t *testing.T) {
	var got uploadedForm
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) { got = readUpload(t, r) })
	require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/x", strings.NewReader("x"), FileUploadParams{NoCreateDirs: true}))
	assert.Equal(t, "false", got.createDirs)
}

func TestFilesUpload_SeekerIsRetriedFromWhereItStood(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var contents [][]byte
			client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				contents = append(contents, readUpload(t, r).content)
				if n == 1 {
					w.WriteHeader(status)
				}
			})
			r := bytes.NewReader(everyByte)
			_, err := r.Seek(100, io.SeekStart)
			require.NoError(t, err)
			require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/f", r, FileUploadParams{}))
			assert.EqualValues(t, 2, count.Load())
			assert.Equal(t, [][]byte{everyByte[100:], everyByte[100:]}, contents)
		})
	}
}

func TestFilesUpload_SeekerIsRetriedAfterTheConnectionDropped(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		readUpload(t, r)
		if n == 1 {
			hijackAndClose(w)
		}
	})
	require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/f", bytes.NewReader(everyByte), FileUploadParams{}))
	assert.EqualValues(t, 2, count.Load())
}

// onlyReader hides every method of r but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestFilesUpload_ReaderThatCannotSeekIsNeverRetried(t *testing.T) {
	cases := []struct {
		name  string
		fail  func(w http.ResponseWriter)
		check func(t *testing.T, err error)
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, func(t *testing.T, err error) {
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
		}},
		{"429", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrRateLimited)
		}},
		{"dropped connection", hijackAndClose, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrOutcomeUnknown)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				readUpload(t, r)
				tc.fail(w)
			})
			err := client.Files.Upload(t.Context(), "cmp_1", "/f", onlyReader{bytes.NewReader(everyByte)}, FileUploadParams{})
			require.Error(t, err)
			tc.check(t, err)
			assert.EqualValues(t, 1, count.Load())
		})
	}
}

// failingReader is a seekable reader that fails once it has yielded good
// bytes.
type failingReader struct {
	*bytes.Reader
	good int64
	err  error
}

func newFailingReader(good int, err error) *failingReader {
	return &failingReader{Reader: bytes.NewReader(everyByte), good: int64(good), err: err}
}

func (f *failingReader) Read(p []byte) (int, error) {
	pos := f.Size() - int64(f.Len())
	if pos >= f.good {
		return 0, f.err
	}
	return f.Reader.Read(p[:min(int64(len(p)), f.good-pos)])
}

// shortSeeker claims more bytes at its end than it yields.
type shortSeeker struct {
	*bytes.Reader
	claimed int64
}

func (s *shortSeeker) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekEnd {
		return s.claimed, nil
	}
	return s.Reader.Seek(offset, whence)
}

func TestFilesUpload_FailingOrShortReaderSaysHowFarItGot(t *testing.T) {
	boom := errors.New("disk on fire")
	cases := []struct {
		name string
		r    io.Reader
		want string
	}{
		{"failing seeker", newFailingReader(300, boom), "failed after 300 bytes: disk on fire"},
		{"failing reader", onlyReader{newFailingReader(300, boom)}, "failed after 300 bytes: disk on fire"},
		{"short seeker", &shortSeeker{bytes.NewReader(everyByte[:300]), 1000}, "ended after 300 of its 1000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				_, _ = io.Copy(io.Discard, r.Body)
			})
			err := client.Files.Upload(t.Context(), "cmp_1", "/f", tc.r, FileUploadParams{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "miosa: POST /computers/cmp_1/files/upload: ")
			assert.NotErrorIs(t, err, ErrOutcomeUnknown)
			assert.LessOrEqual(t, count.Load(), int32(1), "a reader that failed is not read again")
		})
	}
}

// watchedReader is an endless reader that counts the reads that start
// after the upload returned.
type watchedReader struct {
	returned, late atomic.Bool
}

func (w *watchedReader) Read(p []byte) (int, error) {
	if w.returned.Load() {
		w.late.Store(true)
	}
	clear(p)
	return len(p), nil
}

func TestFilesUpload_ReaderIsNotReadAfterTheCallReturns(t *testing.T) {
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		// Answer at once, without reading the endless body.
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	r := &watchedReader{}
	err := client.Files.Upload(t.Context(), "cmp_1", "/f", r, FileUploadParams{})
	r.returned.Store(true)
	require.Error(t, err)
	time.Sleep(20 * time.Millisecond)
	assert.False(t, r.late.Load())
}

// slowReader yields one byte per tick.
type slowReader struct {
	left int
	tick time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.tick)
	s.left--
	p[0] = 'x'
	return 1, nil
}

func TestFilesUpload_IsNotBoundedByTheRequestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"ok":true}`) }}
		client := newFakeClient(t, rec, WithRequestTimeout(time.Second))
		// Ten seconds of sending, ten times the request timeout.
		err := client.Files.Upload(t.Context(), "cmp_1", "/f", &slowReader{left: 10, tick: time.Second}, FileUploadParams{})
		require.NoError(t, err)
	})
}

func TestFilesUpload_RequestTimeoutBoundsTheWaitForTheAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}}, WithRequestTimeout(time.Second), WithMaxRetries(0))
		start := time.Now()
		err := client.Files.Upload(t.Context(), "cmp_1", "/f", &slowReader{left: 3, tick: time.Second}, FileUploadParams{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 4*time.Second, time.Since(start), "three seconds sending, one waiting")
	})
}

func TestFilesDownload_StreamsTheBytesAndReturnsTheCount(t *testing.T) {
	for _, name := range hardNames {
		t.Run(name, func(t *testing.T) {
			client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				assert.Equal(t, "/api/v1/computers/cmp_1/files/download", r.URL.Path)
				assert.Equal(t, name, r.URL.Query().Get("path"))
				assert.Equal(t, "*/*", r.Header.Get("Accept"), "a file is asked for whatever its type")
				w.Header().Set("Content-Length", strconv.Itoa(len(everyByte)))
				_, _ = w.Write(everyByte)
			}, WithMaxResponseSize(10))
			var buf bytes.Buffer
			n, err := client.Files.Download(t.Context(), "cmp_1", name, &buf)
			require.NoError(t, err)
			assert.EqualValues(t, len(everyByte), n)
			assert.Equal(t, everyByte, buf.Bytes())
		})
	}
}

func TestFilesDownload_BodyShorterThanItsLengthIsAnErrorWithTheCount(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write(everyByte[:300])
		flushAndClose(w)
	})
	var buf bytes.Buffer
	n, err := client.Files.Download(t.Context(), "cmp_1", "/f", &buf)
	require.Error(t, err)
	assert.EqualValues(t, 300, n)
	assert.Equal(t, everyByte[:300], buf.Bytes())
	assert.Contains(t, err.Error(), "after 300 of 1000 bytes")
	assert.EqualValues(t, 1, count.Load(), "bytes reached the writer: never sent again")
}

func TestFilesDownload_ShortBodyFromAnyTransportIsAnError(t *testing.T) {
	// A transport that does not check lengths itself: the SDK still does.
	client := newFakeClientWith(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 1000,
			Body: io.NopCloser(bytes.NewReader(everyByte[:10])), Request: r}, nil
	}))
	n, err := client.Files.Download(t.Context(), "cmp_1", "/f", io.Discard)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.EqualValues(t, 10, n)
}

func TestFilesDownload_RetriedOnlyBeforeTheFirstByte(t *testing.T) {
	cases := []struct {
		name     string
		first    func(w http.ResponseWriter)
		attempts int32
		ok       bool
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, 2, true},
		{"dropped before the answer", hijackAndClose, 2, true},
		{"dropped after the headers", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(everyByte)))
			w.WriteHeader(200)
			flushAndClose(w)
		}, 2, true},
		{"dropped after some bytes", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(everyByte)))
			_, _ = w.Write(everyByte[:10])
			flushAndClose(w)
		}, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					tc.first(w)
					return
				}
				_, _ = w.Write(everyByte)
			})
			var buf bytes.Buffer
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", &buf)
			assert.Equal(t, tc.attempts, count.Load())
			if !tc.ok {
				require.Error(t, err)
				assert.EqualValues(t, 10, n)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, everyByte, buf.Bytes(), "the file once, whole")
			assert.EqualValues(t, len(everyByte), n)
		})
	}
}

// failingWriter fails every write.
type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestFilesDownload_FailingWriterIsFinal(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = w.Write(everyByte) })
	full := errors.New("disk full")
	_, err := client.Files.Download(t.Context(), "cmp_1", "/f", failingWriter{full})
	require.ErrorIs(t, err, full)
	assert.EqualValues(t, 1, count.Load())
}

// trickle is a handler that sends first, then one byte per tick while
// bytes are left; then it ends the answer, or with stall, waits for the
// client to go away.
func trickle(first []byte, bytesLeft int, tick time.Duration, stall bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write(first)
		for range bytesLeft {
			select {
			case <-time.After(tick):
				_, _ = w.Write([]byte{'x'})
			case <-r.Context().Done():
				return
			}
		}
		if stall {
			<-r.Context().Done()
		}
	}
}

func TestFilesDownload_StallLimit(t *testing.T) {
	t.Run("a stall after bytes were written ends the download", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client := newFakeClientWith(t, pipeTransport{trickle([]byte("abc"), 0, 0, true)})
			start := time.Now()
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", io.Discard)
			require.Error(t, err)
			assert.EqualValues(t, 3, n)
			assert.Contains(t, err.Error(), "no data for 30s")
			assert.Equal(t, transferStallLimit, time.Since(start))
		})
	})
	t.Run("a stall before the first byte is retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int32
			client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					trickle(nil, 0, 0, true)(w, r)
					return
				}
				_, _ = w.Write(everyByte)
			}})
			var buf bytes.Buffer
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", &buf)
			require.NoError(t, err)
			assert.EqualValues(t, len(everyByte), n)
			assert.EqualValues(t, 2, calls.Load())
		})
	})
	t.Run("a writer that blocks is not a stalled server", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "9")
				for range 3 {
					_, _ = w.Write([]byte("abc"))
				}
			}})
			// Each write takes twice the stall limit: the server waits for
			// the caller, not the other way round.
			w := &slowWriter{took: 2 * transferStallLimit}
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", w)
			require.NoError(t, err)
			assert.EqualValues(t, 9, n)
			assert.Equal(t, "abcabcabc", w.buf.String())
		})
	})
	t.Run("the server's silence after a slow write is still a stall", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client := newFakeClientWith(t, pipeTransport{trickle([]byte("abc"), 0, 0, true)}, WithMaxRetries(0))
			start := time.Now()
			w := &slowWriter{took: 2 * transferStallLimit}
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", w)
			require.Error(t, err)
			assert.EqualValues(t, 3, n)
			assert.Contains(t, err.Error(), "no data for 30s")
			assert.Equal(t, 2*transferStallLimit+transferStallLimit, time.Since(start), "the write's time, then the stall limit")
		})
	})
	t.Run("a slow but steady download is not cut, whatever the request timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// One byte every 20 s for 200 s: never a 30 s stall.
			client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				trickle(nil, 10, 20*time.Second, false)(w, r)
			}}, WithRequestTimeout(time.Second))
			n, err := client.Files.Download(t.Context(), "cmp_1", "/f", io.Discard)
			require.NoError(t, err)
			assert.EqualValues(t, 10, n)
		})
	})
}

// cancelOnWrite cancels a context once it is written to.
type cancelOnWrite struct {
	cancel context.CancelFunc
	n      int
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.n += len(p)
	c.cancel()
	return len(p), nil
}

func TestFilesDownload_ContextCancelEndsItMidTransfer(t *testing.T) {
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = w.Write(everyByte)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	w := &cancelOnWrite{cancel: cancel}
	n, err := client.Files.Download(ctx, "cmp_1", "/f", w)
	require.ErrorIs(t, err, context.Canceled)
	assert.EqualValues(t, w.n, n)
	assert.Positive(t, n)
}

func TestFilesUpload_ContextCancelEndsItMidTransfer(t *testing.T) {
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = io.Copy(io.Discard, r.Body)
	})
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancellingReader{cancel: cancel}
	err := client.Files.Upload(ctx, "cmp_1", "/f", r, FileUploadParams{})
	require.ErrorIs(t, err, context.Canceled)
}

// cancellingReader is an endless reader that cancels a context on its
// tenth read.
type cancellingReader struct {
	cancel context.CancelFunc
	reads  int
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.reads++; c.reads == 10 {
		c.cancel()
	}
	clear(p)
	return len(p), nil
}

func TestFilesList_DecodesEveryShape(t *testing.T) {
	entries := `[{"name":"a.txt","path":"/w/a.txt","type":"file","size":3,"modified_at":"2024-05-01T10:00:00Z","permissions":"rw-r--r--"},` +
		`{"name":"sub","is_dir":true},{"name":"link","type":"symlink","size":"7"},{"name":"b","is_dir":false}]`
	shapes := map[string]string{
		"bare array":         entries,
		"data":               `{"data":` + entries + `}`,
		"files":              `{"files":` + entries + `}`,
		"entries":            `{"path":"/w","entries":` + entries + `}`,
		"data holds entries": `{"data":{"entries":` + entries + `}}`,
	}
	for name, body := range shapes {
		t.Run(name, func(t *testing.T) {
			client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				assert.Equal(t, "/w", r.URL.Query().Get("path"))
				writeJSON(w, 200, body)
			})
			got, err := client.Files.List(t.Context(), "cmp_1", "/w")
			require.NoError(t, err)
			require.Len(t, got, 4)
			assert.Equal(t, FileInfo{Name: "a.txt", Path: "/w/a.txt", Type: FileTypeFile, Size: 3,
				ModifiedAt: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), Permissions: "rw-r--r--", Raw: got[0].Raw}, got[0])
			assert.True(t, got[1].IsDir())
			assert.Equal(t, "/w/sub", got[1].Path)
			assert.Equal(t, FileTypeSymlink, got[2].Type)
			assert.EqualValues(t, 7, got[2].Size)
			assert.Equal(t, FileTypeFile, got[3].Type)
			assert.JSONEq(t, `{"name":"sub","is_dir":true}`, string(got[1].Raw))
		})
	}
}

func TestFilesList_EmptyDirListsHome(t *testing.T) {
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		assert.Equal(t, "path=%2Fhome%2Fuser", r.URL.RawQuery)
		writeJSON(w, 200, `{"data":[{"name":"x"}]}`)
	})
	got, err := client.Files.List(t.Context(), "cmp_1", "")
	require.NoError(t, err)
	assert.Equal(t, "/home/user/x", got[0].Path)
}

func TestFilesList_RefusesEntriesThatCannotBeRight(t *testing.T) {
	for _, body := range []string{`[{"name":"x","size":-1}]`, `[{"name":"x","size":"lots"}]`, `[{"size":1}]`, `{"nothing":[]}`} {
		client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
		_, err := client.Files.List(t.Context(), "cmp_1", "/")
		assert.Error(t, err, body)
	}
}

func TestFilesDelete_SendsPathAndRecursiveInTheQuery(t *testing.T) {
	for _, recursive := range []bool{false, true} {
		client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			assert.Equal(t, http.MethodDelete, r.Method)
			assert.Equal(t, "/api/v1/computers/cmp_1/files", r.URL.Path)
			assert.Equal(t, "/w/what?#.txt", r.URL.Query().Get("path"))
			assert.Equal(t, strconv.FormatBool(recursive), r.URL.Query().Get("recursive"))
			w.WriteHeader(http.StatusNoContent)
		})
		require.NoError(t, client.Files.Delete(t.Context(), "cmp_1", "/w/what?#.txt", FileDeleteParams{Recursive: recursive}))
	}
}

func TestFilesExport_PostsThePathAndIsRetriedLikeARead(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		body, _ := io.ReadAll(r.Body)
		assert.JSONEq(t, `{"path":"/w/a b.txt"}`, string(body))
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		writeJSON(w, 200, `{"data":{"url":"https://files.test/x?sig=1","expires_at":"2030-01-01T00:00:00Z"}}`)
	})
	got, err := client.Files.Export(t.Context(), "cmp_1", "/w/a b.txt")
	require.NoError(t, err)
	assert.Equal(t, "https://files.test/x?sig=1", got.URL)
	assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), got.ExpiresAt)
	assert.EqualValues(t, 2, count.Load())
}

func TestFilesExport_AnswerWithoutURLIsAnError(t *testing.T) {
	client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"expires_at":null}`) })
	_, err := client.Files.Export(t.Context(), "cmp_1", "/f")
	assert.ErrorContains(t, err, "no url")
}

func TestFiles_InvalidArgumentsFailBeforeAnyRequest(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	ctx := t.Context()
	calls := map[string]func() error{
		"upload, empty id":   func() error { return client.Files.Upload(ctx, " ", "/f", strings.NewReader(""), FileUploadParams{}) },
		"upload, empty path": func() error { return client.Files.Upload(ctx, "cmp_1", "", strings.NewReader(""), FileUploadParams{}) },
		"upload, nil reader": func() error { return client.Files.Upload(ctx, "cmp_1", "/f", nil, FileUploadParams{}) },
		"upload, newline": func() error {
			return client.Files.Upload(ctx, "cmp_1", "/a\nb", strings.NewReader(""), FileUploadParams{})
		},
		"download, empty path": func() error {
			_, err := client.Files.Download(ctx, "cmp_1", " ", io.Discard)
			return err
		},
		"download, nil writer": func() error {
			_, err := client.Files.Download(ctx, "cmp_1", "/f", nil)
			return err
		},
		"download, dot id": func() error {
			_, err := client.Files.Download(ctx, "..", "/f", io.Discard)
			return err
		},
		"list, empty id": func() error {
			_, err := client.Files.List(ctx, "", "/")
			return err
		},
		"delete, empty path": func() error { return client.Files.Delete(ctx, "cmp_1", "", FileDeleteParams{}) },
		"export, empty path": func() error {
			_, err := client.Files.Export(ctx, "cmp_1", "")
			return err
		},
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), ErrInvalidParams, name)
	}
	assert.Zero(t, count.Load())
}

// hijackAndClose cuts the connection without answering.
func hijackAndClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// flushAndClose sends what was written so far, then cuts the connection.
func flushAndClose(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
	hijackAndClose(w)
}

// newFakeClientWith returns a client whose requests go through rt.
func newFakeClientWith(t *testing.T, rt http.RoundTripper, opts ...Option) *Client {
	t.Helper()
	all := append([]Option{WithBaseURL("https://api.test/api/v1"), WithHTTPClient(&http.Client{Transport: rt}), WithRetryDelay(0, 0)}, opts...)
	c, err := NewClient(testKey, all...)
	require.NoError(t, err)
	return c
}

// pipeTransport serves each request with a handler in a goroutine and
// hands the answer over as soon as its headers are written, the body
// streamed through a pipe: a network in miniature that runs inside a
// synctest bubble. A handler that returns because the request's context
// ended breaks the body off, as a closed connection does.
type pipeTransport struct{ h http.HandlerFunc }

func (p pipeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, body: pw, headers: make(chan struct{})}
	in := r.Clone(r.Context())
	in.RequestURI = r.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	go func() {
		p.h(w, in)
		w.WriteHeader(http.StatusOK)
		pw.CloseWithError(cmp.Or(r.Context().Err(), io.EOF))
	}()
	select {
	case <-w.headers:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	length := int64(-1)
	if v := w.header.Get("Content-Length"); v != "" {
		length, _ = strconv.ParseInt(v, 10, 64)
	}
	return &http.Response{StatusCode: w.status, Header: w.header, ContentLength: length, Body: pr, Request: r}, nil
}

type pipeWriter struct {
	header  http.Header
	body    *io.PipeWriter
	once    sync.Once
	status  int
	headers chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) {
	w.once.Do(func() {
		w.status = status
		close(w.headers)
	})
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func TestFilesUpload_SendsItsLengthWhenTheReaderKnowsIt(t *testing.T) {
	cases := []struct {
		name    string
		r       io.Reader
		chunked bool
	}{
		{"a reader that can seek", bytes.NewReader(everyByte), false},
		{"a reader that cannot", onlyReader{bytes.NewReader(everyByte)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var length int64
			var received int
			client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				length = r.ContentLength
				body, _ := io.ReadAll(r.Body)
				received = len(body)
			})
			require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/f", tc.r, FileUploadParams{}))
			if tc.chunked {
				assert.EqualValues(t, -1, length, "an unknown length is sent chunked")
			} else {
				assert.EqualValues(t, received, length, "Content-Length is the whole form's")
			}
			assert.Greater(t, received, len(everyByte))
		})
	}
}

func TestFilesUpload_AServerThatStopsTakingBytesEndsTheUpload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadFull(r.Body, make([]byte, 10)) // and then no more
			<-r.Context().Done()
		}}, WithMaxRetries(0))
		start := time.Now()
		err := client.Files.Upload(t.Context(), "cmp_1", "/f", bytes.NewReader(make([]byte, 1<<20)), FileUploadParams{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "took no bytes of the upload")
		assert.Equal(t, transferStallLimit, time.Since(start), "the stall limit, not the context, ended it")
	})
}

func TestFilesUpload_ASlowReaderIsNotAStalledServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"ok":true}`) }}
		client := newFakeClient(t, rec)
		// Each read of the file takes longer than the stall limit.
		err := client.Files.Upload(t.Context(), "cmp_1", "/f", &slowReader{left: 2, tick: 2 * transferStallLimit}, FileUploadParams{})
		require.NoError(t, err)
	})
}

// zeros is an endless source of zero bytes to read at any offset.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

func TestFilesUpload_ASuccessAnsweredBeforeTheWholeFormWasSentIsAnError(t *testing.T) {
	t.Run("in memory", func(t *testing.T) {
		for name, r := range map[string]func() io.Reader{
			"a reader that can seek": func() io.Reader { return bytes.NewReader(make([]byte, 1<<20)) },
			"a reader that cannot":   func() io.Reader { return onlyReader{bytes.NewReader(make([]byte, 1<<20))} },
		} {
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var calls atomic.Int32
					client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
						calls.Add(1)
						_, _ = io.ReadFull(r.Body, make([]byte, 100))
						w.WriteHeader(http.StatusCreated) // and read no more
						<-r.Context().Done()
					}})
					err := client.Files.Upload(t.Context(), "cmp_1", "/f", r(), FileUploadParams{})
					require.ErrorIs(t, err, errAnsweredEarly)
					assert.NotErrorIs(t, err, ErrOutcomeUnknown, "an answer came: it is the wrong one")
					assert.Contains(t, err.Error(), "miosa: POST /computers/cmp_1/files/upload: the server answered before the whole upload was sent: it said 201 Created after ")
					if _, seeks := r().(io.Seeker); seeks {
						assert.EqualValues(t, 3, calls.Load(), "a reader that can seek is sent again, as after any failure")
					} else {
						assert.EqualValues(t, 1, calls.Load())
					}
				})
			})
		}
	})
	t.Run("over loopback", func(t *testing.T) {
		// 64 MiB is more than the connection's buffers hold, so the server
		// answers while most of the form is still to be sent.
		file := io.NewSectionReader(zeros{}, 0, 64<<20)
		client, _ := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			_ = http.NewResponseController(w).EnableFullDuplex() // answer without reading the rest first
			_, _ = io.ReadFull(r.Body, make([]byte, 1<<10))
			writeJSON(w, http.StatusOK, `{"ok":true}`)
		}, WithMaxRetries(0))
		err := client.Files.Upload(t.Context(), "cmp_1", "/f", file, FileUploadParams{})
		require.ErrorIs(t, err, errAnsweredEarly)
		assert.Contains(t, err.Error(), "it said 200 OK after ")
	})
	t.Run("a server that read the declared length, before the transport looked for the end", func(t *testing.T) {
		// net/http's transport takes exactly Content-Length bytes, and only
		// then reads on to check the body ends: the answer may come first.
		synctest.Test(t, func(t *testing.T) {
			client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
				require.Positive(t, r.ContentLength)
				_, _ = io.CopyN(io.Discard, r.Body, r.ContentLength)
				w.WriteHeader(http.StatusCreated)
			}})
			require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/f", bytes.NewReader(make([]byte, 1<<20)), FileUploadParams{}))
		})
	})
	t.Run("a server that read the whole form", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusCreated)
			}})
			require.NoError(t, client.Files.Upload(t.Context(), "cmp_1", "/f", bytes.NewReader(make([]byte, 1<<20)), FileUploadParams{}))
		})
	})
}

func TestFilesDownload_PartialContentIsAnErrorAndWritesNothing(t *testing.T) {
	client, count := filesServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		assert.Empty(t, r.Header.Get("Range"), "the whole file is asked for")
		w.Header().Set("Content-Range", "bytes 0-99/512")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(everyByte[:100])
	})
	var buf bytes.Buffer
	n, err := client.Files.Download(t.Context(), "cmp_1", "/f", &buf)
	require.Error(t, err)
	assert.Equal(t, "miosa: GET /computers/cmp_1/files/download: the server answered 206 Partial Content (bytes 0-99/512) to a request for the whole file; nothing was written", err.Error())
	assert.Zero(t, n)
	assert.Zero(t, buf.Len(), "no part of the file reaches the writer")
	assert.EqualValues(t, 1, count.Load(), "the same request would get the same part")
}

// slowWriter takes its time over every write, as a full disk or a slow
// consumer does.
type slowWriter struct {
	took time.Duration
	buf  bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.took)
	return w.buf.Write(p)
}
