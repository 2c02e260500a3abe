// Package s3standin is the interface of the project's S3 stand-in (S3 with event
// notifications into SQS): the documents of its admin endpoints, a Client for them, and a Front,
// the HTTP front through which tests make S3 misbehave.
//
// The stand-in itself (module imgpipe/standins, package s3server, built on gofakes3) runs as
// a process of its own, started by internal/devstack; neither it nor gofakes3 is a dependency
// of the product.
package s3standin
