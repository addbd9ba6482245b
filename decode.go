package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// sendForObject sends op and decodes the single object in its answer, under
// whichever envelope the server used; wrappers name the resource's own key.
func sendForObject[T any](ctx context.Context, c *Client, op call, opts []Option, wrappers ...string) (*T, error) {
	res, err := c.send(ctx, op, opts)
	if err != nil {
		return nil, err
	}
	if v, ok := decodeGuess[T](res.body, wrappers); ok {
		return v, nil
	}
	raw, err := wire.Object(res.body, wrappers...)
	if err == nil && raw == nil {
		err = errors.New("empty response body")
	}
	var v *T
	if err == nil {
		v, err = decodeObject[T](raw)
	}
	if err != nil {
		return nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, err)
	}
	return v, nil
}

// decodeGuess decodes, in one pass, the object an answer most likely is:
// the value of its only member when that is one of wrappers, "data" or
// "result" ({"data":{...}}), or else, for a type that notes envelope keys
// as it decodes (a computer), the whole body. Finding the object first
// would read the body twice. It reports false when the guess does not
// hold, and the caller then reads the body carefully: a wrong single-member
// guess is not one JSON value, so it fails to decode (every type decoded
// here validates its input), and a bare guess that meets an envelope key
// holding an object is refused by the type.
func decodeGuess[T any](body []byte, wrappers []string) (*T, bool) {
	if inner, ok := wire.SoleMember(body, wrappers...); ok {
		v, err := decodeObject[T](inner)
		return v, err == nil
	}
	var v T
	if bare, ok := any(&v).(interface{ decodeBare([]byte, []string) bool }); ok && bare.decodeBare(body, wrappers) {
		return &v, true
	}
	return nil, false
}

// decodeObject decodes one JSON object (see decodeInto).
func decodeObject[T any](raw []byte) (*T, error) {
	var v T
	if err := decodeInto(&v, raw); err != nil {
		return nil, err
	}
	return &v, nil
}

// decodeInto decodes one JSON value into v. A type that decodes itself is
// handed the bytes directly: it validates them as it decodes (wire does
// not), and json.Unmarshal would validate them once more before calling it.
// The bytes belong to this call, so a type may keep them as its Raw.
func decodeInto[T any](v *T, raw []byte) error {
	switch u := any(v).(type) {
	case interface{ decodeOwned([]byte) error }:
		return u.decodeOwned(raw)
	case json.Unmarshaler:
		return u.UnmarshalJSON(raw)
	}
	return json.Unmarshal(raw, v)
}

// sendForList sends op and decodes the list in its answer, with the
// pagination meta when the server sent one (see decodeList).
func sendForList[T any](ctx context.Context, c *Client, op call, opts []Option, wrappers ...string) ([]T, *wire.Meta, error) {
	res, err := c.send(ctx, op, opts)
	if err != nil {
		return nil, nil, err
	}
	items, meta, err := decodeList[T](ctx, res.body, wrappers)
	if err != nil {
		return nil, nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, err)
	}
	return items, meta, nil
}

// maxListHeap bounds what the items of one list answer may take as Go
// values (beyond the text they hold, which the size cap on the answer
// bounds): a list of more items than fit is refused before any is decoded.
// A JSON item can be a dozen bytes and its Go value a few hundred (a
// Computer is over 300), so without it a 32 MiB answer of tiny items would
// take gigabytes. 64 MiB holds over 190 000 computers or 550 000 file
// entries; a page of computers holds at most 500 on known servers.
const maxListHeap = 64 << 20

// listCheckEvery is how many items are decoded between looks at the
// caller's context.
const listCheckEvery = 256

// decodeList decodes the list in body (under any envelope wire.List knows)
// into a slice made once at its final size, item by item, each decoded in
// place as decodeInto does. It refuses a list whose items would take more
// than maxListHeap before decoding any, and stops with ctx's error when
// ctx ends while it decodes.
func decodeList[T any](ctx context.Context, body []byte, wrappers []string) ([]T, *wire.Meta, error) {
	raw, meta, err := wire.List(body, wrappers...)
	if err != nil || raw == nil {
		return nil, meta, err
	}
	limit, n := maxListHeap/max(int(reflect.TypeFor[T]().Size()), 1), 0
	err = wire.Items(raw, func(json.RawMessage) error {
		if n++; n > limit {
			return fmt.Errorf("the list holds more than the %d items the SDK decodes from one answer", limit)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	items := make([]T, n)
	i := 0
	err = wire.Items(raw, func(item json.RawMessage) error {
		if i%listCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := decodeInto(&items[i], item); err != nil {
			return fmt.Errorf("%w (item %d of the list)", err, i)
		}
		i++
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return items, meta, nil
}

// errMissingID is the decoding error for an object that names no id: such
// an answer describes no resource the caller could use.
var errMissingID = errors.New(`the object has no "id"`)

// decodeResource decodes data into v and refuses an object that left *id
// empty: a resource (computer, template, build) is known by its id.
func decodeResource(data []byte, v any, id *string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	if *id == "" {
		return errMissingID
	}
	return nil
}
