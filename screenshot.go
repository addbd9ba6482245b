package miosa

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Screenshot is a PNG image the server sent of its screen, or of a region
// of it, as written to the caller's writer.
type Screenshot struct {
	// Width and Height are the image's size in pixels, read from the PNG's
	// header.
	Width, Height int
	// Bytes is how many bytes were written to the caller's writer.
	Bytes int64
}

// A screenshot is checked to be a PNG before any of it reaches the
// caller's writer, and followed chunk by chunk as it streams so that one
// cut short is never taken for a whole image. Checking needs only the
// header and the chunks' lengths: the image is never decoded or held.

// pngSignature begins every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

const (
	// pngHeaderSize is what is checked before anything is written: the
	// signature, then the IHDR chunk's length, type, 13 bytes and CRC.
	pngHeaderSize = 8 + 4 + 4 + 13 + 4
	// maxScreenshotSide and maxScreenshotPixels bound the size a PNG may
	// claim: beyond any screen (a 16384 × 16384 one has 2^28 pixels),
	// where decoding it would cost gigabytes.
	maxScreenshotSide   = 1 << 16
	maxScreenshotPixels = 1 << 28
	// maxPNGChunk is the largest chunk length the PNG format allows.
	maxPNGChunk = 1<<31 - 1
)

// screenshotSizeFits reports whether a width and height are within the
// bounds of a screenshot.
func screenshotSizeFits(width, height int) bool {
	return width <= maxScreenshotSide && height <= maxScreenshotSide && width*height <= maxScreenshotPixels
}

// parsePNGHeader checks that head, the first pngHeaderSize bytes of an
// answer, begin a PNG image: the signature, then an IHDR chunk whose CRC
// holds, describing an image of a size within bounds with a bit depth,
// colour type and methods the format defines. It returns the image's size.
func parsePNGHeader(head []byte) (width, height int, err error) {
	if len(head) < pngHeaderSize || !bytes.Equal(head[:8], pngSignature) {
		return 0, 0, errors.New("not a PNG image")
	}
	ihdr := head[12 : pngHeaderSize-4] // the type and the data, which the CRC covers
	if binary.BigEndian.Uint32(head[8:12]) != 13 || string(ihdr[:4]) != "IHDR" {
		return 0, 0, errors.New("a PNG image that does not begin with its IHDR chunk")
	}
	if crc32.ChecksumIEEE(ihdr) != binary.BigEndian.Uint32(head[pngHeaderSize-4:]) {
		return 0, 0, errors.New("a PNG image whose IHDR chunk fails its checksum")
	}
	w, h := binary.BigEndian.Uint32(ihdr[4:8]), binary.BigEndian.Uint32(ihdr[8:12])
	depth, colour, compression, filter, interlace := ihdr[12], ihdr[13], ihdr[14], ihdr[15], ihdr[16]
	switch {
	case w == 0 || h == 0:
		return 0, 0, fmt.Errorf("an empty PNG image (%d×%d pixels)", w, h)
	case w > maxScreenshotSide || h > maxScreenshotSide || uint64(w)*uint64(h) > maxScreenshotPixels:
		return 0, 0, fmt.Errorf("a PNG image of %d×%d pixels, larger than any screen", w, h)
	case !pngDepthFits(colour, depth) || compression != 0 || filter != 0 || interlace > 1:
		return 0, 0, fmt.Errorf("a PNG image with an invalid IHDR chunk (bit depth %d, colour type %d, methods %d/%d/%d)",
			depth, colour, compression, filter, interlace)
	}
	return int(w), int(h), nil
}

// pngDepthFits reports whether the PNG format allows bit depth with colour
// type: greyscale 1 to 16 bits, a palette 1 to 8, the others 8 or 16.
func pngDepthFits(colour, depth byte) bool {
	switch colour {
	case 0:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16
	case 3:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8
	case 2, 4, 6:
		return depth == 8 || depth == 16
	}
	return false
}

// streamScreenshot checks that an answer is a PNG image before writing any
// of it to w, then copies it to w (with copyDownload, so as a download is
// copied) and returns its size and the bytes written. The answer may hold
// at most limit bytes. A failure before anything was written wraps
// errNothingDelivered when the connection broke, so that the call may be
// sent again, but not when the server answered something that is not a
// PNG image.
func streamScreenshot(ctx context.Context, w io.Writer, resp *http.Response, limit int64) (*Screenshot, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: the screenshot declares %d bytes, limit %d (WithMaxResponseSize)", errBodyTooLarge, resp.ContentLength, limit)
	}
	body := &pngBody{body: resp.Body, limit: limit}
	width, height, err := body.readHeader(ctx, resp.Header.Get("Content-Type"), transferStallLimit)
	if err != nil {
		return nil, err
	}
	shot := &Screenshot{Width: width, Height: height}
	checked := *resp
	checked.Body = body
	shot.Bytes, err = copyDownload(ctx, w, &checked, transferStallLimit)
	return shot, err
}

// pngBody is a screenshot answer's body: read and checked up to the end of
// its header by readHeader, then read again from its start, the header
// coming from memory, with each chunk followed to the image's end. It
// yields at most limit bytes.
type pngBody struct {
	body   io.ReadCloser
	limit  int64
	read   int64 // bytes read from body
	head   [pngHeaderSize]byte
	headAt int // how much of head the reader has had
	chunks pngChunks
}

// readHeader reads the answer's first pngHeaderSize bytes and checks that
// they begin a PNG image of a screen's size. It waits at most stall for
// them.
func (b *pngBody) readHeader(ctx context.Context, contentType string, stall time.Duration) (width, height int, err error) {
	var stalled atomic.Bool
	// Closing the body is what unblocks a read waiting on the network.
	watchdog := time.AfterFunc(stall, func() {
		stalled.Store(true)
		b.body.Close()
	})
	n := 0
	for n < len(b.head) && err == nil {
		var m int
		m, err = b.readCapped(b.head[n:])
		n += m
	}
	watchdog.Stop()
	got := b.head[:n]
	switch {
	case !bytes.HasPrefix(pngSignature, got[:min(n, len(pngSignature))]):
		// Not quoted with escapes: the text must stay as the server sent
		// it for an echoed key to be found and scrubbed.
		return 0, 0, fmt.Errorf("the screenshot is not a PNG image: the answer (Content-Type %s) begins: %s",
			capText(contentType, maxErrorCode), capText(string(got), 2*pngHeaderSize))
	case n == len(b.head):
		width, height, err = parsePNGHeader(got)
		if err != nil {
			return 0, 0, fmt.Errorf("the screenshot is %v", err)
		}
		return width, height, nil
	case err == io.EOF && n == 0:
		return 0, 0, fmt.Errorf("the screenshot is empty: the answer (Content-Type %s) has no body", capText(contentType, maxErrorCode))
	case err == io.EOF:
		return 0, 0, fmt.Errorf("the screenshot ends within its PNG header, after %d bytes", n)
	case errors.Is(err, errBodyTooLarge):
		return 0, 0, err
	case stalled.Load():
		err = fmt.Errorf("no data for %s", stall)
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	}
	return 0, 0, fmt.Errorf("the screenshot broke off within its PNG header, after %d bytes: %w (%w)", n, err, errNothingDelivered)
}

// Read yields the header that readHeader checked, then the rest of the
// body. A body that ends before the image's IEND chunk, or whose chunks
// are not a PNG's, fails.
func (b *pngBody) Read(p []byte) (int, error) {
	if b.headAt < len(b.head) {
		n := copy(p, b.head[b.headAt:])
		b.headAt += n
		return n, nil
	}
	n, err := b.readCapped(p)
	if werr := b.chunks.walk(p[:n]); werr != nil {
		return n, werr
	}
	if err == io.EOF && !b.chunks.ended {
		err = fmt.Errorf("the PNG image ends before its IEND chunk: %w", io.ErrUnexpectedEOF)
	}
	return n, err
}

// readCapped reads from the body, failing with errBodyTooLarge, after the
// bytes within it, once more than limit bytes came.
func (b *pngBody) readCapped(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.read += int64(n)
	if over := b.read - b.limit; over > 0 {
		b.read = b.limit
		return n - int(over), fmt.Errorf("%w: the screenshot has more than %d bytes (WithMaxResponseSize)", errBodyTooLarge, b.limit)
	}
	return n, err
}

func (b *pngBody) Close() error { return b.body.Close() }

// pngChunks follows the chunks of a PNG image after its IHDR as their
// bytes go by: each a 4-byte length, a 4-byte type, the data and a 4-byte
// CRC, up to the IEND chunk. Like Go's own decoder, it does not look into
// chunks (nor at what follows IEND): the lengths are enough to know where
// the image ends.
type pngChunks struct {
	skip   int64   // bytes of the current chunk's data and CRC still to come
	next   [8]byte // the next chunk's length and type, as far as they came
	nextAt int
	iend   bool // the current chunk is IEND
	ended  bool // IEND and its CRC have gone by
}

// walk follows the chunks through p, the next bytes of the image.
func (c *pngChunks) walk(p []byte) error {
	for len(p) > 0 && !c.ended {
		if c.skip > 0 {
			n := min(c.skip, int64(len(p)))
			c.skip, p = c.skip-n, p[n:]
			c.ended = c.skip == 0 && c.iend
			continue
		}
		n := copy(c.next[c.nextAt:], p)
		c.nextAt, p = c.nextAt+n, p[n:]
		if c.nextAt < len(c.next) {
			return nil
		}
		c.nextAt = 0
		length := binary.BigEndian.Uint32(c.next[:4])
		if length > maxPNGChunk {
			return fmt.Errorf("the PNG image is malformed: a chunk claims %d bytes", length)
		}
		c.iend = string(c.next[4:]) == "IEND"
		c.skip = int64(length) + 4 // and the CRC
	}
	return nil
}
