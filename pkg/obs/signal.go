package obs

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// ShutdownSignals returns a context that ends at the first SIGINT or SIGTERM, which log
// records. Every later one is logged and ignored: the signals stay caught until the process
// exits, so a second SIGTERM (a preStop hook and the kubelet both signalling, an impatient
// Ctrl-C) cannot cut the drain or the closes after it short. The binaries bound their own
// shutdown (the drain timeout and the timeouts of each close); to stop one sooner, send
// SIGKILL, which loses what a kill loses (see each binary's documentation).
//
// stop ends the goroutine that logs the signals, and cancels the context; the signals stay
// caught (nothing restores their default action), so call it last, as the binary returns.
func ShutdownSignals(log *zap.Logger) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		first := true
		for {
			select {
			case s := <-sigs:
				if first {
					first = false
					log.Info("signal received; shutting down", zap.String("signal", s.String()))
					cancel()
					continue
				}
				log.Warn("signal received again during shutdown; ignored (the shutdown is bounded; SIGKILL stops at once)", zap.String("signal", s.String()))
			case <-done:
				return
			}
		}
	})
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			cancel()
		})
	}
}
