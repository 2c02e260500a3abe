package indexstore

// SetOnRead makes each of s's transactions run f between its read and its writes.
func SetOnRead(s *Store, f func()) { s.onRead = f }
