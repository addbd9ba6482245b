package miosa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repeatItems returns a JSON array of n copies of item.
func repeatItems(item string, n int) []byte {
	var b bytes.Buffer
	b.Grow(n * (len(item) + 1))
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// decodes counts the decodings of countedItem and hugeItem; afterDecode,
// when set, runs after each decoding of a countedItem.
var (
	decodes     int
	afterDecode func()
)

// countedItem is a number that counts its decodings.
type countedItem struct{ N int }

func (c *countedItem) UnmarshalJSON(data []byte) error {
	decodes++
	if afterDecode != nil {
		afterDecode()
	}
	return json.Unmarshal(data, &c.N)
}

// hugeItem is a Go value of 1 MiB: 64 of them fill maxListHeap.
type hugeItem struct{ Pad [1 << 20]byte }

func (h *hugeItem) UnmarshalJSON([]byte) error {
	decodes++
	return nil
}

func TestDecodeList_DecodesEveryItemInOrder(t *testing.T) {
	items, meta, err := decodeList[Computer](t.Context(), []byte(`{"data":[{"id":"a"},{"id":"b","name":"x"}],"meta":{"total":2}}`), nil)
	require.NoError(t, err)
	require.Len(t, items, 2)
	assert.Equal(t, "a", items[0].ID)
	assert.Equal(t, "x", items[1].Name)
	assert.JSONEq(t, `{"id":"b","name":"x"}`, string(items[1].Raw))
	assert.Equal(t, 2, meta.Total)

	items, meta, err = decodeList[Computer](t.Context(), []byte(`{"data":null,"meta":{"total":0}}`), nil)
	require.NoError(t, err)
	assert.Nil(t, items)
	assert.NotNil(t, meta)
}

func TestDecodeList_RefusesMoreItemsThanItsHeapBoundBeforeDecodingAny(t *testing.T) {
	limit := maxListHeap / (1 << 20)
	decodes = 0
	_, _, err := decodeList[hugeItem](t.Context(), repeatItems(`1`, limit+1), nil)
	require.ErrorContains(t, err, fmt.Sprintf("the list holds more than the %d items the SDK decodes from one answer", limit))
	assert.Zero(t, decodes, "nothing was decoded")

	items, _, err := decodeList[hugeItem](t.Context(), repeatItems(`1`, limit), nil)
	require.NoError(t, err)
	assert.Len(t, items, limit)
}

func TestDecodeList_StopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	decodes = 0
	afterDecode = func() {
		if decodes == 1000 {
			cancel()
		}
	}
	defer func() { afterDecode = nil }()
	_, _, err := decodeList[countedItem](ctx, repeatItems(`7`, 100_000), nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.LessOrEqual(t, decodes, 1000+listCheckEvery, "it stopped within one check of the cancel")

	decodes = 0
	_, _, err = decodeList[countedItem](ctx, repeatItems(`7`, 10), nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, decodes, "an ended context decodes nothing")
}

// A listing of tiny items as large as the size cap allows: once, decoding
// it took 12.9 s and 1 GiB (files) and 25 s and 2.6 GiB (computers). Now
// it is refused before any item is decoded, having cost about what reading
// the body costs.
func TestList_AHostileListingOfTinyItemsCostsLittle(t *testing.T) {
	for name, tc := range map[string]struct {
		item string
		list func(c *Client) error
	}{
		"Files.List": {`{"name":"a"}`, func(c *Client) error {
			_, err := c.Files.List(t.Context(), "cmp_1", "/")
			return err
		}},
		"Computers.List": {`{"id":"a"}`, func(c *Client) error {
			_, err := c.Computers.List(t.Context(), ComputerListParams{})
			return err
		}},
	} {
		t.Run(name, func(t *testing.T) {
			body := repeatItems(tc.item, (31<<20)/(len(tc.item)+1))
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				_, _ = w.Write(body)
			})
			c := newTestClient(t, base)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tc.list(c)
			runtime.ReadMemStats(&after)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "the list holds more than the")
			allocated := after.TotalAlloc - before.TotalAlloc
			assert.Less(t, allocated, uint64(4*len(body)), "allocated %d MiB for a %d MiB answer", allocated>>20, len(body)>>20)
		})
	}
}
