package console

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// CORSRuleID names the bucket CORS rule of the console.
const CORSRuleID = "imgpipe-console"

// CORSRule is the bucket CORS rule a browser needs to upload from the console at origins:
// PUT with the headers the presigned PUT signs (Content-Type and x-amz-meta-*), ETag readable.
// Images are shown with <img>, which needs no CORS.
func CORSRule(origins ...string) s3types.CORSRule {
	return s3types.CORSRule{
		ID: aws.String(CORSRuleID), AllowedOrigins: origins, AllowedMethods: []string{"PUT"},
		AllowedHeaders: []string{"content-type", "x-amz-meta-*"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(3000),
	}
}

// AllowUploads sets the console's CORS rule for origins on bucket, keeping the bucket's other
// rules: for the local stack and tests (on AWS the bucket's infrastructure code owns its CORS
// configuration). It needs s3:GetBucketCORS and s3:PutBucketCORS.
func AllowUploads(ctx context.Context, client *s3.Client, bucket string, origins ...string) error {
	var rules []s3types.CORSRule
	got, err := client.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: &bucket})
	var api smithy.APIError
	switch {
	case err == nil:
		rules = slices.DeleteFunc(got.CORSRules, func(r s3types.CORSRule) bool { return aws.ToString(r.ID) == CORSRuleID })
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchCORSConfiguration":
	default:
		return fmt.Errorf("read CORS of bucket %s: %w", bucket, err)
	}
	rules = append(rules, CORSRule(origins...))
	if _, err := client.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: &bucket, CORSConfiguration: &s3types.CORSConfiguration{CORSRules: rules}}); err != nil {
		return fmt.Errorf("set CORS of bucket %s: %w", bucket, err)
	}
	return nil
}
