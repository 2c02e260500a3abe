package grpcfront

import (
	"net"
	"sync"
	"sync/atomic"
)

// listener is a TCP listener that keeps the connections it accepted, so that pause can cut
// them all and refuse new ones.
type listener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	paused bool

	cut atomic.Int64 // connections cut by pause
}

func newListener(l net.Listener) *listener {
	return &listener{Listener: l, conns: map[*trackedConn]struct{}{}}
}

// Accept returns the next connection; while paused, connections are closed as they come.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.paused {
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

// pause(true) closes every open connection and refuses new ones; pause(false) accepts again.
func (l *listener) pause(on bool) {
	l.mu.Lock()
	l.paused = on
	var conns map[*trackedConn]struct{}
	if on {
		conns, l.conns = l.conns, map[*trackedConn]struct{}{}
	}
	l.mu.Unlock()
	for c := range conns {
		l.cut.Add(1)
		c.Conn.Close()
	}
}

func (l *listener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn leaves its listener's set when closed.
type trackedConn struct {
	net.Conn
	l    *listener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	return c.Conn.Close()
}
