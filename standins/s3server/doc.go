// Package s3server is the project's local Amazon S3: gofakes3's protocol layer over the
// stand-in's own versioned in-memory storage, plus the part no available stand-in does
// faithfully, S3 event notifications delivered to SQS queues (the SQS stand-in, fauxqs, in the
// local stack).
//
// # Addressing
//
// Path-style only: requests are /BUCKET/KEY. Clients must set UsePathStyle (aws-sdk-go-v2:
// s3.Options.UsePathStyle = true) and use the stand-in's URL as the endpoint.
//
// # Notification configuration
//
// PUT /BUCKET?notification (PutBucketNotificationConfiguration) stores the bucket's
// QueueConfiguration elements: Id (generated when absent), Queue (an SQS queue ARN), one or
// more Event and an optional Filter/S3Key with prefix and suffix rules. Accepted events:
// s3:ObjectCreated:* / Put / Post / Copy / CompleteMultipartUpload,
// s3:ObjectRemoved:* / Delete / DeleteMarkerCreated and
// s3:LifecycleExpiration:* / Delete / DeleteMarkerCreated. It answers as S3 does:
//
//   - 404 NoSuchBucket for an unknown bucket;
//   - 400 InvalidArgument for an unsupported event type, a bad filter rule, duplicate IDs, or
//     two configurations that overlap (a common event type, and prefixes and suffixes that
//     can both match one key; S3 forbids this whatever the destinations);
//   - 400 InvalidArgument "Unable to validate the following destination configurations" when
//     a queue ARN is malformed or the s3:TestEvent cannot be delivered to it. Like S3, the
//     stand-in validates each destination by sending it an s3:TestEvent, synchronously;
//     x-amz-skip-destination-validation: true skips that (and the test event).
//   - TopicConfiguration, CloudFunctionConfiguration and EventBridgeConfiguration are refused
//     with 400 InvalidArgument: the stand-in delivers to SQS queues only.
//
// An empty NotificationConfiguration removes the bucket's configuration, and so does deleting
// the bucket. GET /BUCKET?notification returns the stored configuration in S3's XML (filter
// rule names capitalised, "Prefix" and "Suffix", as S3 answers).
//
// A queue ARN arn:aws:sqs:REGION:ACCOUNT:NAME is resolved with GetQueueUrl(QueueName=NAME)
// on the configured SQS endpoint and cached; REGION and ACCOUNT are not checked.
//
// # Events
//
// After each successful write the stand-in builds AWS-shaped records with imgpipe/pkg/s3event
// (one record per message, as S3 sends them) for every configuration whose event types and
// key filters select it: PutObject (ObjectCreated:Put), browser POST upload (Post),
// CopyObject (Copy, recognised by x-amz-copy-source), CompleteMultipartUpload, DeleteObject
// (ObjectRemoved:Delete, or DeleteMarkerCreated when a versioned bucket got a delete marker)
// and DeleteObjects (one event per deleted key). A failed request sends nothing. Filters
// apply to the decoded key. Records carry size and eTag (unquoted; the multipart ETag for
// CompleteMultipartUpload) for creations only, versionId on versioned buckets, and a
// sequencer: 18 upper-case hex digits from a global counter that follows the clock, so it
// grows strictly per key across all events (and across restarts). The object keys a request
// writes are locked while it runs, so sequencers follow the order of the writes on each key.
// DeleteObject of a missing key succeeds in S3 and so does its event here.
//
// # Delivery
//
// Event messages go to an in-memory outbox drained by one goroutine with SendMessage, or
// SendMessageBatch when several are pending for one queue. A failed send is retried with the
// project's backoff (pkg/retry: full jitter under a ceiling of 100 ms doubling to 5 s) until
// Close; delivery is at least once and, as in S3, not ordered. A message whose queue no longer
// exists is retried for 30 s (a restarted SQS stand-in may be re-creating it), then dropped
// and logged, as S3 drops events for a deleted destination; one SQS rejects as malformed is
// dropped at once. Stats counts all of this.
//
// The answer to a write is held until its events are in the outbox, so once a client has seen
// success, Flush covers its events. When the outbox holds QueueCapacity messages a writer
// waits up to 5 s for room and then its events are accepted beyond capacity, with an error
// logged: S3 never drops an event, so the stand-in slows writers and grows rather than lose
// one. After Close, object writes are refused with 503 so that no write happens without its
// event.
//
// # Presigned URLs and CORS
//
// With Options.Credentials (access key ID -> secret key) every request authenticated in its
// query string, a presigned URL, is verified as S3 verifies Signature Version 4: the
// signature over the method, the path as sent, the query, the signed headers as the request
// carries them (so a presigned PUT's signed Content-Type, Content-Length and x-amz-meta-*
// values are enforced) and UNSIGNED-PAYLOAD; the expiry (X-Amz-Expires, at most 7 days) and a
// signing time at most 15 minutes ahead; and no x-amz-* header that was not signed. Failures
// answer as S3 does: 403 SignatureDoesNotMatch, InvalidAccessKeyId or AccessDenied ("Request
// has expired", "There were headers present in the request which were not signed"), 400
// AuthorizationQueryParametersError. Without Credentials presigned requests are served
// unchecked. Requests signed in the Authorization header are never verified.
//
// PUT, GET and DELETE /BUCKET?cors (PutBucketCors, GetBucketCors, DeleteBucketCors) store a
// bucket's CORSRule list (origins with one '*' wildcard at most, methods GET PUT HEAD POST
// DELETE, allowed headers with wildcards, expose headers, max age). A preflight (OPTIONS with
// Origin and Access-Control-Request-Method) is answered 200 from the first rule allowing the
// origin, the method and every requested header, else 403 AccessForbidden, as is every
// preflight on a bucket without CORS. Other answers carry Access-Control-* headers only when
// the request has an Origin that a rule allows with the request's method; gofakes3's own
// allow-everything CORS headers are removed.
//
// # What gofakes3 does not do

// # Versioning
//
// The storage keeps every version of every object as S3 does (gofakes3's own in-memory backend
// lost a key whose current version was deleted by version ID; reads of the key then crashed the
// handler, which the SDK saw as a connection closed with EOF). A bucket is unversioned until
// PutBucketVersioning; Enabled stacks a new version with a fresh 32-character ID on every write
// and a delete marker on every DELETE without a version ID (even of a missing key); Suspended
// writes replace the null version ("null") and a DELETE replaces it with a null delete marker,
// keeping the other versions. DELETE with ?versionId= (including "null") removes that version
// for good; when it was the current one the previous version becomes current again. GET and HEAD
// of a key whose current version is a delete marker answer 404 NoSuchKey with
// x-amz-delete-marker: true and the marker's x-amz-version-id; GET and HEAD of a marker's own
// version answer 405 MethodNotAllowed. ListObjectVersions lists each key's versions newest first,
// with key and version-ID markers across pages. A write replaces the metadata of the version it
// supersedes (gofakes3 merged it). Events carry versionId whenever versioning is Enabled or
// Suspended ("null" for the null version: AWS's documentation does not say what it sends there).
//
// # Lifecycle
//
// PUT, GET and DELETE /BUCKET?lifecycle store a bucket's lifecycle rules with an ID, Status,
// a prefix (Filter/Prefix or the older top-level Prefix), Expiration/Days and
// NoncurrentVersionExpiration/NoncurrentDays with NewerNoncurrentVersions; rules with other
// elements (transitions, tag or size filters, dates, ExpiredObjectDeleteMarker,
// AbortIncompleteMultipartUpload) are refused with 501 NotImplemented rather than ignored.
// S3 applies lifecycle asynchronously, about once a day; the stand-in applies it only when
// asked, at a time the caller gives: Server.RunLifecycle, or POST /_standin/lifecycle?at=TIME
// (RFC 3339, default now), which answers {"expired":N,"deleteMarkers":M}. Days count as in S3,
// to the next midnight UTC after the object's creation (Expiration) or after it became
// noncurrent (NoncurrentVersionExpiration). A noncurrent version due is deleted for good
// (LifecycleExpiration:Delete with its versionId); a current version due is deleted in an
// unversioned bucket (LifecycleExpiration:Delete) and hidden behind a new delete marker in a
// versioned one (LifecycleExpiration:DeleteMarkerCreated with the marker's versionId).
// Lifecycle events name s3.amazonaws.com as principal and source.
//
// # Checksums
//
// Additional checksums are verified as S3 verifies them, before anything is stored: a
// PutObject or UploadPart whose x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1, -sha256,
// -sha512 or -md5 header does not match the body is refused with 400 BadDigest ("The sha256 you
// specified did not match the calculated checksum."); a value that is not a digest of its
// algorithm, or two such headers, is 400 InvalidRequest. A verified PutObject or UploadPart is
// answered with its checksum header. A multipart upload created with x-amz-checksum-algorithm
// (and x-amz-checksum-type: COMPOSITE, or FULL_OBJECT for the CRCs) remembers every part's
// checksum (computed with that algorithm when a part was sent without one);
// CompleteMultipartUpload must list it for every part (400 InvalidRequest when missing, 400
// InvalidPart when it differs), and a composite final checksum ("<base64 of the checksum of the
// parts' checksums>-<parts>") that does not match is 400 BadDigest. Not modelled, and refused
// with 501 NotImplemented rather than stored unverified: trailing checksums (aws-chunked bodies
// with x-amz-trailer, which the AWS SDKs send only over TLS), checksums of SigV4 streaming
// bodies, the XXHASH algorithms, and the FULL_OBJECT final checksum of a multipart upload.
// GetObject of a multipart object does not return its composite checksum.
// ListMultipartUploads of a bucket without uploads answers an empty list (gofakes3 answered 404
// NoSuchUpload).
//
// # What is not modelled
//
// Browser POST uploads work without policy or signature checks and without ${filename}
// substitution. CopyObject ignores a versionId in x-amz-copy-source and answers with the
// source's version ID in x-amz-version-id (the event carries the destination's).
// Virtual-hosted-style addressing, bucket policies, tagging, object lock, MFA delete and SSE are
// not served; a PUT to an unsupported bucket subresource (?tagging, ?policy, ...) is taken by
// gofakes3 as CreateBucket.
package s3server
