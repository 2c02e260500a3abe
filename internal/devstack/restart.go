package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"imgpipe/internal/grpcfront"
)

// ErrNoFront is returned by Outage and RestartFirestore on a stack started with NoFronts.
var ErrNoFront = errors.New("the emulator has no front (the stack was started with NoFronts)")

// Outage cuts every client of the Pub/Sub or Firestore emulator (part) off for d: their
// connections are reset, and new ones are refused until d has passed. The emulator keeps
// running, and its data, behind its front; clients see what they would see while the service
// restarts. It returns when the outage is over, or when ctx ends (the outage ends then too).
func (s *Stack) Outage(ctx context.Context, part Part, d time.Duration) error {
	f, err := s.front(part)
	if err != nil {
		return err
	}
	defer f.Resume()
	start := time.Now()
	if err := f.Pause(ctx); err != nil {
		return fmt.Errorf("%s outage: %w", part, err)
	}
	t := time.NewTimer(d - time.Since(start))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Stack) front(part Part) (*grpcfront.Front, error) {
	var f *grpcfront.Front
	switch part {
	case PubSub:
		f = s.PubSubFront
	case Firestore:
		f = s.FirestoreFront
	default:
		return nil, fmt.Errorf("no outage for part %s (want pubsub or firestore)", part)
	}
	if f == nil {
		if s.Parts&part == 0 {
			return nil, fmt.Errorf("%s is not part of this stack", part)
		}
		return nil, fmt.Errorf("%s: %w", part, ErrNoFront)
	}
	return f, nil
}

// RestartOptions tunes RestartFirestore. A nil *RestartOptions takes the defaults.
type RestartOptions struct {
	// Down is how long the emulator stays stopped before it starts again; default none.
	// Clients are cut off for Down plus the time of the export, stop and start.
	Down time.Duration
	// StartTimeout bounds the new emulator's start; default 2 minutes.
	StartTimeout time.Duration
}

// RestartFirestore stops the Firestore emulator and starts it again on the same port with
// the data it held. Clients are cut off first (connections reset, new ones refused) and every
// call that reached the emulator ends before it exports its data, so nothing a client was
// told is written is missing afterwards; then the emulator is stopped, started again with the
// export imported (--import-data), and clients are let in. Only the (default) database is
// exported. Needs the front (not NoFronts).
//
// The Pub/Sub emulator has no way to keep its data across a restart (no persistence flag,
// no export); Outage is its stand-in for a restart.
func (s *Stack) RestartFirestore(ctx context.Context, opts *RestartOptions) error {
	f, err := s.front(Firestore)
	if err != nil {
		return err
	}
	o := RestartOptions{StartTimeout: 2 * time.Minute}
	if opts != nil {
		o.Down = opts.Down
		if opts.StartTimeout > 0 {
			o.StartTimeout = opts.StartTimeout
		}
	}
	defer f.Resume()
	if err := f.Pause(ctx); err != nil {
		return fmt.Errorf("restart firestore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts++
	name := "restart-" + strconv.Itoa(s.restarts)
	dir := filepath.Join(s.LogDir, "firestore-data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("restart firestore: %w", err)
	}
	if err := exportFirestore(ctx, s.FirestoreEmulatorHost, s.ProjectID, dir, name); err != nil {
		return fmt.Errorf("restart firestore: %w", err)
	}
	old := s.firestore
	old.stop(stopGrace)
	if o.Down > 0 {
		t := time.NewTimer(o.Down)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	_, portText, _ := net.SplitHostPort(s.FirestoreEmulatorHost)
	port, _ := strconv.Atoi(portText)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.StartTimeout)
	defer cancel()
	p, _, err := startFirestore(sctx, s.LogDir, "firestore-"+name+".log", port, s.ProjectID,
		filepath.Join(dir, name, name+".overall_export_metadata"))
	if err != nil {
		return fmt.Errorf("restart firestore: %w", err)
	}
	for i, q := range s.procs {
		if q == old {
			s.procs[i] = p
		}
	}
	s.firestore = p
	return nil
}

// exportFirestore asks the emulator to write the (default) database to dir/name.
func exportFirestore(ctx context.Context, host, project, dir, name string) error {
	body, _ := json.Marshal(map[string]string{
		"database":         "projects/" + project + "/databases/(default)",
		"export_directory": dir,
		"export_name":      name,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+"/emulator/v1/projects/"+project+":export", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("export: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
