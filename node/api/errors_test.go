package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestErrorClasses(t *testing.T) {
	seen := map[int]Class{}
	for _, c := range Classes {
		s := c.Status()
		if s < 400 || s > 599 {
			t.Errorf("class %s: status %d is not an error status", c, s)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("classes %s and %s share status %d: the client could not tell them apart", prev, c, s)
		}
		seen[s] = c
		if ClassOfStatus(s) != c {
			t.Errorf("ClassOfStatus(%d) = %s, want %s", s, ClassOfStatus(s), c)
		}
	}
	if ClassOfStatus(http.StatusTeapot) != ErrInternal {
		t.Error("an unknown status must read as internal")
	}
	cause := errors.New("no such job")
	err := fmt.Errorf("job 7: %w", WithClass(ErrNotFound, cause))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || !errors.Is(err, cause) || ClassOf(err) != ErrNotFound {
		t.Errorf("WithClass: %v: class %s", err, ClassOf(err))
	}
	if ClassOf(errors.New("plain")) != ErrInternal || ClassOf(fmt.Errorf("x: %w", ErrConflict)) != ErrConflict {
		t.Error("ClassOf of a plain error must be internal, of a wrapped class that class")
	}
	if WithClass(ErrNotFound, nil) != nil {
		t.Error("WithClass(nil) must be nil")
	}
}
