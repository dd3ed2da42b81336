package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
)

// openAzure opens an azblob:// URL. It replaces gocloud's default opener,
// which has two faults for tracectl:
//
//   - it reads the credentials from the environment once per process, so a
//     second Open with other credentials silently reuses the first ones;
//   - it uses shared-key credentials only when the account is in
//     AZURE_STORAGE_ACCOUNT. With the account in the URL (?storage_account=)
//     it falls back to Azure AD tokens, which the SDK refuses to send over
//     plain http, and gocloud's streaming writer then panics on the error.
//
// Credentials, in order: AZURE_STORAGE_KEY (with the account from the URL
// or AZURE_STORAGE_ACCOUNT), AZURE_STORAGE_SAS_TOKEN,
// AZURE_STORAGE_CONNECTION_STRING, then Azure AD (DefaultAzureCredential,
// https only). The URL accepts gocloud's query parameters: domain,
// protocol, cdn, localemu, storage_account.
func openAzure(ctx context.Context, u *url.URL, display string) (*blob.Bucket, error) {
	invalid := func(format string, args ...any) error {
		return &Error{Op: "open", Key: display, Kind: KindInvalid, Err: fmt.Errorf(format, args...)}
	}
	containerName := u.Host
	if containerName == "" {
		return nil, invalid("the URL names no container: use azblob://CONTAINER")
	}
	opts := azureblob.NewDefaultServiceURLOptions()
	envOpts := *opts
	q := u.Query()
	for param, values := range q {
		if len(values) > 1 {
			return nil, invalid("query parameter %q given %d times", param, len(values))
		}
		v := values[0]
		switch param {
		case "domain":
			opts.StorageDomain = v
		case "protocol":
			opts.Protocol = v
		case "storage_account":
			opts.AccountName = v
		case "cdn", "localemu":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return nil, invalid("query parameter %s=%q: want true or false", param, v)
			}
			if param == "cdn" {
				opts.IsCDN = on
			} else {
				opts.IsLocalEmulator = on
			}
		default:
			return nil, invalid("unknown query parameter %q; azblob URLs take domain, protocol, storage_account, cdn and localemu", param)
		}
	}
	if opts.Protocol != "" && opts.Protocol != "http" && opts.Protocol != "https" {
		return nil, invalid("protocol=%q: use http or https", opts.Protocol)
	}

	key := os.Getenv("AZURE_STORAGE_KEY")
	sas := os.Getenv("AZURE_STORAGE_SAS_TOKEN")
	connStr := os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	if connStr == "" {
		connStr = os.Getenv("AZURE_STORAGEBLOB_CONNECTIONSTRING")
	}
	if opts.AccountName == "" && key == "" && sas == "" && connStr != "" {
		// The connection string names its own endpoint.
		client, err := container.NewClientFromConnectionString(connStr, containerName, nil)
		if err != nil {
			return nil, invalid("AZURE_STORAGE_CONNECTION_STRING: %v", err)
		}
		return azureblob.OpenBucket(ctx, client, nil)
	}
	if opts.AccountName == "" {
		return nil, invalid("no Azure storage account: set AZURE_STORAGE_ACCOUNT (and AZURE_STORAGE_KEY) or add ?storage_account=NAME to the URL")
	}
	if sas != "" && key == "" {
		// The token travels in the service URL: the bucket URL must not
		// send it to another endpoint than the environment names.
		envOpts.SASToken = ""
		opts.SASToken = ""
		a, errA := azureblob.NewServiceURL(&envOpts)
		b, errB := azureblob.NewServiceURL(opts)
		if errA != nil || errB != nil || !sameOrigin(string(a), string(b)) {
			return nil, invalid("with AZURE_STORAGE_SAS_TOKEN set, the URL may not change the endpoint (domain, protocol, storage_account): set AZURE_STORAGE_DOMAIN, AZURE_STORAGE_PROTOCOL and AZURE_STORAGE_ACCOUNT instead")
		}
		opts.SASToken = strings.TrimPrefix(sas, "?")
	}
	svc, err := azureblob.NewServiceURL(opts)
	if err != nil {
		return nil, invalid("%v", err)
	}
	containerURL, err := joinContainer(string(svc), containerName)
	if err != nil {
		return nil, invalid("%v", err)
	}
	var client *container.Client
	switch {
	case key != "":
		cred, err := container.NewSharedKeyCredential(opts.AccountName, key)
		if err != nil {
			return nil, invalid("AZURE_STORAGE_KEY is not a valid account key (it is base64, as the portal shows it): %v", err)
		}
		client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, nil)
		if err != nil {
			return nil, invalid("%v", err)
		}
	case sas != "":
		client, err = container.NewClientWithNoCredential(containerURL, nil)
		if err != nil {
			return nil, invalid("%v", err)
		}
	default:
		if opts.Protocol == "http" {
			return nil, invalid("Azure AD credentials are only sent over https; with protocol=http (e.g. Azurite) set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY")
		}
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, &Error{Op: "open", Key: display, Kind: KindPermission, scheme: "azblob", bucket: containerName,
				Err: fmt.Errorf("no Azure credentials found: %w", err)}
		}
		client, err = container.NewClient(containerURL, cred, nil)
		if err != nil {
			return nil, invalid("%v", err)
		}
	}
	return azureblob.OpenBucket(ctx, client, nil)
}

func joinContainer(svc, name string) (string, error) {
	u, err := url.Parse(svc)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("the service URL has no host")
	}
	return u.JoinPath(name).String(), nil
}

func sameOrigin(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}
