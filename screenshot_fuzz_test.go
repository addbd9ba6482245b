package miosa

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// screenshotSeeds are PNG files of every colour type and bit depth Go
// writes, and broken ones: the fuzz targets' starting points.
func screenshotSeeds(t testing.TB) [][]byte {
	rect := image.Rect(0, 0, 5, 3)
	var seeds [][]byte
	for _, img := range []image.Image{
		image.NewGray(rect), image.NewGray16(rect), image.NewRGBA(rect), image.NewNRGBA64(rect),
		image.NewPaletted(rect, color.Palette{color.Black, color.White}),
		image.NewPaletted(rect, color.Palette{color.Black, color.White, color.Transparent}),
	} {
		var buf bytes.Buffer
		require.NoError(t, (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img))
		seeds = append(seeds, buf.Bytes())
	}
	seeds = append(seeds,
		testPNG(t, 40, 30),
		pngOf(ihdr(1<<31-1, 1<<31-1)),
		pngOf(ihdr(3, 3, 16, 3), pngChunk("IEND", nil)),
		pngOf(ihdr(3, 3), pngChunk("IDAT", []byte{1, 2, 3}), pngChunk("IEND", nil), []byte("trailing")),
		[]byte(`{"error":"no display"}`),
		[]byte("<html>"),
		nil,
	)
	return seeds
}

// FuzzParsePNGHeader holds parsePNGHeader to Go's own decoder: any header
// Go reads as an image of a screen's size is accepted with the same size,
// and no header is accepted with a size out of bounds.
func FuzzParsePNGHeader(f *testing.F) {
	for _, seed := range screenshotSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		width, height, err := parsePNGHeader(data)
		config, configErr := png.DecodeConfig(bytes.NewReader(data))
		if err == nil {
			assert.Positive(t, width)
			assert.Positive(t, height)
			assert.True(t, screenshotSizeFits(width, height))
			if configErr == nil {
				assert.Equal(t, [2]int{config.Width, config.Height}, [2]int{width, height})
			}
		}
		if configErr == nil && len(data) >= pngHeaderSize && screenshotSizeFits(config.Width, config.Height) {
			assert.NoError(t, err, "Go reads this header")
		}
	})
}

// FuzzStreamScreenshot checks what reaches the writer: nothing before the
// header is known good, a prefix of the body after, the whole body on
// success, and success for every image Go decodes whole.
func FuzzStreamScreenshot(f *testing.F) {
	for _, seed := range screenshotSeeds(f) {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte, declared bool) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(data)), ContentLength: -1}
		if declared {
			resp.ContentLength = int64(len(data))
		}
		var buf bytes.Buffer
		shot, err := streamScreenshot(t.Context(), &buf, resp, limit)
		switch {
		case shot == nil:
			require.Error(t, err)
			assert.Zero(t, buf.Len(), "nothing is written before the header is checked")
		case err == nil:
			assert.Equal(t, data, buf.Bytes())
			assert.EqualValues(t, len(data), shot.Bytes)
		default:
			assert.Equal(t, data[:buf.Len()], buf.Bytes(), "a prefix of the answer")
			assert.EqualValues(t, buf.Len(), shot.Bytes)
		}
		config, configErr := png.DecodeConfig(bytes.NewReader(data))
		if configErr != nil || config.Width*config.Height > 1<<16 || len(data) > limit {
			return // decoding it whole would cost too much, or it is over the limit
		}
		if _, decodeErr := png.Decode(bytes.NewReader(data)); decodeErr == nil {
			require.NoError(t, err, "Go decodes this image")
			assert.Equal(t, [2]int{config.Width, config.Height}, [2]int{shot.Width, shot.Height})
		}
	})
}
