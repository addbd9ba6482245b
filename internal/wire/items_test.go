package wire

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestItems_YieldsEachValueOfAWellFormedArray(t *testing.T) {
	for body, want := range map[string][]string{
		`[]`:           nil,
		" [ ] \n":      nil,
		`[{"id":"a"}]`: {`{"id":"a"}`},
		`[ {"id":"a,]"} , [1,[2]] ,"x\"]" , 12 , null , true ]`: {`{"id":"a,]"}`, `[1,[2]]`, `"x\"]"`, `12`, `null`, `true`},
	} {
		var got []string
		require.NoError(t, Items([]byte(body), func(item json.RawMessage) error {
			got = append(got, string(item))
			return nil
		}), body)
		assert.Equal(t, want, got, body)
	}
}

func TestItems_RefusesWhatIsNotOneArray(t *testing.T) {
	for _, body := range []string{
		``, `{}`, `[`, `[{"id":"a"}`, `[{"id":"a"},]`, `[,{"id":"a"}]`, `[{"id":"a"} {"id":"b"}]`,
		`[{"id":"a"}] x`, `[] []`, `[{"id":"a"]`, `["unclosed]`,
	} {
		err := Items([]byte(body), func(json.RawMessage) error { return nil })
		assert.ErrorIs(t, err, ErrNotJSON, "%q", body)
	}
}

func TestItems_StopsAtYieldsError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := Items([]byte(`[1,2,3]`), func(json.RawMessage) error {
		calls++
		return stop
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}

func FuzzItems(f *testing.F) {
	f.Add(`[{"id":"a"},[1,{"b":"]"}],"s",1]`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		var items []json.RawMessage
		err := Items([]byte(body), func(item json.RawMessage) error {
			items = append(items, item)
			return nil
		})
		var all []json.RawMessage
		if json.Unmarshal([]byte(body), &all) == nil {
			// A valid array is read exactly as encoding/json reads it.
			require.NoError(t, err)
			require.Len(t, items, len(all))
			for i := range all {
				assert.JSONEq(t, string(all[i]), string(items[i]))
			}
		}
	})
}
