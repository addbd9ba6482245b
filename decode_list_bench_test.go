package miosa

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// listBodies are list answers to decode: tiny items, the most Go value per
// byte a server can send (a hostile answer), and realistic ones.
var listBodies = []struct {
	name string
	body func() []byte
	// after and before decode body as the SDK does now, and did before
	// decodeList: the whole array through encoding/json into a growing
	// slice. Each returns what it decoded.
	after, before func(body []byte) (any, error)
}{
	{"files-tiny", func() []byte { return repeatItems(`{"name":"a"}`, 400_000) },
		decodeListAfter[FileInfo], decodeListBefore[FileInfo]},
	{"files-real", func() []byte {
		return repeatItems(`{"name":"report-0001.csv","path":"/home/user/data/report-0001.csv","type":"file","size":123456,"modified_at":"2026-05-01T10:00:00Z","permissions":"rw-r--r--"}`, 20_000)
	}, decodeListAfter[FileInfo], decodeListBefore[FileInfo]},
	{"computers-tiny", func() []byte { return repeatItems(`{"id":"a"}`, 150_000) },
		decodeListAfter[Computer], decodeListBefore[Computer]},
	{"computers-real", func() []byte { return repeatItems(computerJSON, 5_000) },
		decodeListAfter[Computer], decodeListBefore[Computer]},
}

func decodeListAfter[T any](body []byte) (any, error) {
	items, _, err := decodeList[T](context.Background(), body, nil)
	return items, err
}

// decodeListBefore is how lists were decoded before decodeList.
func decodeListBefore[T any](body []byte) (any, error) {
	raw, _, err := wire.List(body)
	if err != nil {
		return nil, err
	}
	var items []T
	err = json.Unmarshal(raw, &items)
	return items, err
}

// liveHeap returns the bytes of heap in use once garbage is collected.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkListDecoding times decoding one list answer, before (the whole
// array through encoding/json) and after (decodeList: item by item into a
// slice made once), in one run. Per byte of the answer it reports the heap
// the decoded list holds (heap-B/body-B: what the caller keeps) and the
// bytes allocated while decoding (alloc-B/body-B: the garbage made too).
//
//	go test -run '^$' -bench ListDecoding -benchtime 5x -count 3 .
func BenchmarkListDecoding(b *testing.B) {
	for _, lb := range listBodies {
		body := lb.body()
		for _, way := range []struct {
			name   string
			decode func([]byte) (any, error)
		}{{"before", lb.before}, {"after", lb.after}} {
			b.Run(fmt.Sprintf("%s/%s", lb.name, way.name), func(b *testing.B) {
				start := liveHeap()
				items, err := way.decode(body)
				if err != nil {
					b.Fatal(err)
				}
				held := liveHeap() - start
				runtime.KeepAlive(items)
				items = nil

				b.SetBytes(int64(len(body)))
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				n := 0
				for b.Loop() {
					if _, err := way.decode(body); err != nil {
						b.Fatal(err)
					}
					n++
				}
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(held)/float64(len(body)), "heap-B/body-B")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n)/float64(len(body)), "alloc-B/body-B")
			})
		}
	}
}

// BenchmarkListDecoding_Oversized decodes a 31 MiB answer of tiny
// computers, more than maxListHeap holds: once 25 s and 2.6 GiB, it is now
// refused after counting its items, before any is decoded.
//
//	go test -run '^$' -bench ListDecoding_Oversized -benchtime 5x .
func BenchmarkListDecoding_Oversized(b *testing.B) {
	body := repeatItems(`{"id":"a"}`, (31<<20)/len(`{"id":"a"},`))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeListAfter[Computer](body); err == nil {
			b.Fatal("a list over the bound was decoded")
		}
	}
}
