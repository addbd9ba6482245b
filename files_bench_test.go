package miosa_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// benchFileMiB is the size of the file each transfer benchmark moves; a
// small value makes a quick run: go test -bench Files -files.mib 16.
var benchFileMiB = flag.Int("files.mib", 256, "size in MiB of the file the Files benchmarks transfer")

// benchPattern is what the benchmark files are made of, generated on the
// fly: neither side ever holds a whole file.
var benchPattern = func() []byte {
	b := make([]byte, 256<<10)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// patternFile is a seekable reader over size bytes of benchPattern
// repeated, like an *os.File without the disk.
type patternFile struct {
	size, off int64
}

func (p *patternFile) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	start := p.off % int64(len(benchPattern))
	n := copy(b[:min(int64(len(b)), p.size-p.off)], benchPattern[start:])
	p.off += int64(n)
	return n, nil
}

func (p *patternFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += p.off
	case io.SeekEnd:
		offset += p.size
	}
	p.off = offset
	return offset, nil
}

// countingWriter counts what it is given and keeps nothing; unlike
// io.Discard it has no ReadFrom, so both clients copy through their own
// buffers, as into most writers.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// filesBenchServer answers uploads by reading the form's file part to
// nowhere, and downloads by generating size bytes: it buffers nothing.
func filesBenchServer(b *testing.B, size int64) string {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var got int64
			for {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				n, err := io.Copy(io.Discard, part)
				if err != nil {
					return
				}
				if part.FormName() == "file" {
					got = n
				}
			}
			if got != size {
				http.Error(w, fmt.Sprintf("got %d bytes, want %d", got, size), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			for left := size; left > 0; {
				n, err := w.Write(benchPattern[:min(left, int64(len(benchPattern)))])
				if err != nil {
					return
				}
				left -= int64(n)
			}
		}
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/api/v1"
}

// rawUpload is what a hand-written client does: a multipart form written by
// mime/multipart into an io.Pipe that the request reads, the file copied in
// with io.Copy.
func rawUpload(hc *http.Client, base string, src io.Reader) error {
	pr, pw := io.Pipe()
	form := multipart.NewWriter(pw)
	go func() {
		_ = form.WriteField("path", "/home/user/big.bin")
		_ = form.WriteField("create_dirs", "true")
		part, err := form.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.Copy(part, src)
		}
		if err == nil {
			err = form.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/computers/cmp_1/files/upload", pr)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+scriptedKey)
	req.Header.Set("Content-Type", form.FormDataContentType())
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// rawDownload is a GET whose body goes into w with io.Copy.
func rawDownload(hc *http.Client, base string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/computers/cmp_1/files/download?path=%2Fhome%2Fuser%2Fbig.bin", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+scriptedKey)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// heapPeak samples the heap in use while it runs and reports, when stopped,
// the most it grew above where it stood after a GC at the start.
type heapPeak struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	done       sync.WaitGroup
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func readHeap(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{stop: make(chan struct{})}
	s := []metrics.Sample{{Name: heapMetric}}
	h.base.Store(readHeap(s))
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if v := readHeap(s); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// growthMiB stops the sampling and returns the peak growth in MiB.
func (h *heapPeak) growthMiB() float64 {
	close(h.stop)
	h.done.Wait()
	return float64(max(h.peak.Load(), h.base.Load())-h.base.Load()) / (1 << 20)
}

// benchTransfer runs op, which moves one file of size bytes, b.N times,
// and reports the heap's peak growth beside the throughput.
func benchTransfer(b *testing.B, name string, size int64, op func() error) {
	b.Run(fmt.Sprintf("%s/%dMiB", name, size>>20), func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		h := startHeapPeak()
		for b.Loop() {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(h.growthMiB(), "peak-heap-MiB")
	})
}

// filesBenchClients starts the benchmark server and returns an SDK client
// and a plain one for it, with its base URL and the file size.
func filesBenchClients(b *testing.B) (*miosa.Client, *http.Client, string, int64) {
	size := int64(*benchFileMiB) << 20
	base := filesBenchServer(b, size)
	client, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL(base))
	if err != nil {
		b.Fatal(err)
	}
	return client, &http.Client{}, base, size
}

// BenchmarkFilesUpload moves one file per op through Files.Upload and
// through rawUpload, against the same server. Heap growth is of the whole
// process (client and server; the server buffers nothing).
func BenchmarkFilesUpload(b *testing.B) {
	client, hc, base, size := filesBenchClients(b)
	benchTransfer(b, "sdk", size, func() error { return sdkUpload(client, size) })
	benchTransfer(b, "raw", size, func() error { return rawUpload(hc, base, &patternFile{size: size}) })
}

// BenchmarkFilesDownload moves one file per op through Files.Download and
// through rawDownload, against the same server.
func BenchmarkFilesDownload(b *testing.B) {
	client, hc, base, size := filesBenchClients(b)
	benchTransfer(b, "sdk", size, func() error { return sdkDownload(client, size) })
	benchTransfer(b, "raw", size, func() error { return checkSize(rawDownload(hc, base, &countingWriter{}))(size) })
}

func sdkUpload(client *miosa.Client, size int64) error {
	return client.Files.Upload(context.Background(), "cmp_1", "/home/user/big.bin", &patternFile{size: size}, miosa.FileUploadParams{})
}

func sdkDownload(client *miosa.Client, size int64) error {
	return checkSize(client.Files.Download(context.Background(), "cmp_1", "/home/user/big.bin", &countingWriter{}))(size)
}

// checkSize turns a download's count and error into a check of its size.
func checkSize(n int64, err error) func(size int64) error {
	return func(size int64) error {
		if err == nil && n != size {
			err = fmt.Errorf("downloaded %d bytes, want %d", n, size)
		}
		return err
	}
}

// BenchmarkFilesPaired alternates the SDK and the raw client in one loop,
// so both see the same machine load, and reports the SDK's throughput as a
// fraction of the raw client's (above 1: the SDK is faster).
func BenchmarkFilesPaired(b *testing.B) {
	client, hc, base, size := filesBenchClients(b)
	pair := func(name string, sdk, raw func() error) {
		b.Run(fmt.Sprintf("%s/%dMiB", name, size>>20), func(b *testing.B) {
			b.SetBytes(2 * size)
			var sdkTime, rawTime time.Duration
			for b.Loop() {
				start := time.Now()
				if err := sdk(); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := raw(); err != nil {
					b.Fatal(err)
				}
				sdkTime, rawTime = sdkTime+mid.Sub(start), rawTime+time.Since(mid)
			}
			b.ReportMetric(rawTime.Seconds()/sdkTime.Seconds(), "sdk/raw-throughput")
		})
	}
	pair("upload", func() error { return sdkUpload(client, size) },
		func() error { return rawUpload(hc, base, &patternFile{size: size}) })
	pair("download", func() error { return sdkDownload(client, size) },
		func() error { return checkSize(rawDownload(hc, base, &countingWriter{}))(size) })
}
