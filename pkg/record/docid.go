package record

import (
	"crypto/sha256"
	"encoding/hex"
)

// DocumentID is the Firestore document ID of an object: the hex SHA-256 of "bucket/key".
//
// Firestore IDs may not contain '/', may not be "." or "..", may not match __.*__ and may not
// exceed 1,500 bytes; S3 keys can be all of those. A hash is valid for any key, has a fixed
// length, and spreads writes over the key space (monotonic IDs create hotspots). Bucket names
// cannot contain '/', so "bucket/key" is unambiguous. Bucket and key are stored as fields.
func DocumentID(bucket, key string) string {
	sum := sha256.Sum256([]byte(bucket + "/" + key))
	return hex.EncodeToString(sum[:])
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
