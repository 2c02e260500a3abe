package main

import (
	"strings"
	"testing"
)

// TestVisionFeatureSettings: an unknown feature or a smart crop ratio Vision does not take
// stops the analyzer at start, naming the setting.
func TestVisionFeatureSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		bad  string
	}{
		{[]string{"--vision-features", "tags,faces"}, "--vision-features"},
		{[]string{"--vision-features", " , "}, "--vision-features"},
		{[]string{"--vision-features", "tags,caption,objects,read,people,denseCaptions,smartCrops"}, ""},
		{[]string{"--vision-smart-crops", "1,2.5"}, "--vision-smart-crops"},
		{[]string{"--vision-smart-crops", "square"}, "--vision-smart-crops"},
		{[]string{"--vision-smart-crops", "1,0.75"}, ""},
	} {
		err := parse(tc.args...)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%q: error %v, want one naming %s", tc.args, err, tc.bad)
		}
	}
}
