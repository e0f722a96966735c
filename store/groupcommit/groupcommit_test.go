package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memTx is a transaction over a slice: what it appended is kept only
// when the runner commits.
type memTx struct{ writes []int }

type memStore struct {
	mu        sync.Mutex
	committed []int
	commits   int
	entered   chan struct{} // closed when the first commit starts
	release   chan struct{} // when set, the first commit waits for it
}

func (s *memStore) run(fn func(*memTx) error) error {
	if s.release != nil {
		close(s.entered)
		<-s.release
		s.release = nil
	}
	t := &memTx{}
	if err := fn(t); err != nil {
		return err // rolled back: t's writes are dropped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed = append(s.committed, t.writes...)
	s.commits++
	return nil
}

// One caller's failing write is taken out and the others commit without
// it, each told its own outcome.
func TestAFailingWriteLosesNoOtherWrite(t *testing.T) {
	s := &memStore{entered: make(chan struct{}), release: make(chan struct{})}
	g := New(s.run, 0)
	defer g.Close()
	bad := errors.New("bad write")
	// The first write holds the commit, so the next five queue behind it
	// and share one transaction.
	first := make(chan error, 1)
	go func() {
		first <- g.Do(context.Background(), func(t *memTx) error { t.writes = append(t.writes, 0); return nil })
	}()
	<-s.entered
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.Do(context.Background(), func(t *memTx) error {
				t.writes = append(t.writes, i)
				if i == 3 {
					return bad
				}
				return nil
			})
		}()
	}
	waitQueued(g, 5)
	close(s.release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if want := error(nil); i == 3 {
			if !errors.Is(errs[i], bad) {
				t.Errorf("write 3: %v, want its own error", errs[i])
			}
		} else if errs[i] != want {
			t.Errorf("write %d: %v", i, errs[i])
		}
	}
	got := map[int]bool{}
	for _, w := range s.committed {
		got[w] = true
	}
	if len(s.committed) != 5 || got[3] {
		t.Fatalf("committed %v: want 0,1,2,4,5 once each", s.committed)
	}
	if s.commits != 2 {
		t.Fatalf("%d commits: want the first, then one for the group without write 3", s.commits)
	}
}

// A write offered after Close is refused; queued ones finished first.
func TestCloseRefusesNewWrites(t *testing.T) {
	s := &memStore{}
	g := New(s.run, 0)
	if err := g.Do(context.Background(), func(t *memTx) error { t.writes = append(t.writes, 1); return nil }); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := g.Do(context.Background(), func(*memTx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if g.Stats().Calls.Load() != 1 || len(s.committed) != 1 {
		t.Fatalf("stats %d calls, committed %v", g.Stats().Calls.Load(), s.committed)
	}
}

// waitQueued waits until n writes are queued behind the running commit.
func waitQueued(g *Group[*memTx], n int) {
	for {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q >= n {
			return
		}
		runtime.Gosched()
	}
}
