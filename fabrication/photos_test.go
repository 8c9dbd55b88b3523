package fabrication

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
)

func TestPutPhoto(t *testing.T) {
	t.Parallel()
	key := func(c string) string { return strings.Repeat(c, 64) }
	cam := func(c string) Photo { return Photo{Key: key(c), Source: PhotoCamera} }
	op := func(c string) Photo { return Photo{Key: key(c), Source: PhotoOperator} }
	var six []Photo
	for _, c := range []string{"1", "2", "3", "4", "5", "6"} {
		six = append(six, op(c))
	}
	tests := []struct {
		name    string
		have    []Photo
		add     Photo
		replace bool
		want    []string // first characters of the keys, in order
		err     error
	}{
		{name: "first camera photo", add: cam("a"), want: []string{"a"}},
		{name: "a new snapshot replaces the camera's", have: []Photo{cam("a"), op("b")}, add: cam("c"), want: []string{"b", "c"}},
		{name: "a repeated snapshot is listed once", have: []Photo{cam("a")}, add: cam("a"), want: []string{"a"}},
		{name: "a person's photo is added", have: []Photo{cam("a")}, add: op("b"), want: []string{"a", "b"}},
		{name: "the same blob twice is listed once", have: []Photo{op("b"), cam("a")}, add: op("b"), want: []string{"a", "b"}},
		{name: "replace takes the place of all", have: []Photo{cam("a"), op("b")}, add: op("c"), replace: true, want: []string{"c"}},
		{name: "full", have: six, add: op("7"), want: []string{"1", "2", "3", "4", "5", "6"}, err: storage.ErrConflict},
		{name: "full, replaced", have: six, add: op("7"), replace: true, want: []string{"7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := slices.Clone(tt.have)
			got, err := PutPhoto(tt.have, tt.add, tt.replace)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			var keys []string
			for _, p := range got {
				keys = append(keys, p.Key[:1])
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("got %v, want %v", keys, tt.want)
			}
			if !slices.Equal(tt.have, before) {
				t.Errorf("the job's photos were changed in place: %v", tt.have)
			}
		})
	}
}
