package k8s

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/pkg/analysis"
	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/vision"
)

// unusedPublisher satisfies analyzer.Deps; the analyzer built here is never run.
type unusedPublisher struct{}

func (unusedPublisher) Publish(context.Context, *analysis.Record) (string, error) {
	return "", errors.New("not for publishing: the analyzer is only built to list its metrics")
}

// analyzerMetricNames builds an analyzer the way cmd/analyzer does (its real clients, which
// connect to nothing until used) and lists the metric families its registry exports.
func analyzerMetricNames(ctx context.Context) (map[string]bool, error) {
	reg := obs.NewRegistry()
	vobs := analyzer.NewVisionObserver()
	cred, err := vision.NewKeyCredential("unused")
	if err != nil {
		return nil, err
	}
	vc, err := vision.New("https://unused.cognitiveservices.azure.com", cred, &vision.Options{Observer: vobs})
	if err != nil {
		return nil, err
	}
	defer vc.Close()
	_, err = analyzer.New(analyzer.Deps{
		SQS: sqs.New(sqs.Options{Region: "eu-west-1"}), S3: s3.New(s3.Options{Region: "eu-west-1"}),
		Vision: vc, Publisher: unusedPublisher{},
	}, &analyzer.Options{QueueURL: "https://unused/q", DLQURL: "https://unused/dlq", Registerer: reg, VisionObserver: vobs})
	if err != nil {
		return nil, err
	}
	fams, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "imgpipe_") {
			names[f.GetName()] = true
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the analyzer registered no imgpipe_ metric")
	}
	return names, nil
}
