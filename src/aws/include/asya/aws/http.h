// HTTP for the AWS clients (SQS, STS, credential endpoints): the names they use, on top of the one
// HTTP client (asya/http). Perform() sends through one process-wide http::Client (30 s total and
// 5 s connect timeouts, no retries: callers retry themselves), which keeps connections alive where
// the server allows it (moto answers `Connection: close`) and may be called from any thread. A
// request bound to a CancelToken ends at once when the token is cancelled (a 20 s SQS long poll).
#pragma once

#include "asya/aws/sigv4.h"
#include "asya/base/result.h"
#include "asya/http/client.h"
#include "asya/http/url.h"

namespace asya::aws {

using HttpRequest = http::Request;    // timeout / connect_timeout 0 = the defaults above
using HttpResponse = http::Response;  // any HTTP status is a successful Result
using CancelToken = http::CancelToken;
using http::FormEncode;
using http::ParseUrl;
using http::Url;

// TLS for every later Perform() (SQS, STS, credential endpoints): a CA bundle to verify servers
// with instead of the system's (AWS_CA_BUNDLE, as the AWS CLI and SDKs name it), client
// certificates. Verification is always on unless insecure_skip_verify. Call it at start-up;
// requests already running finish with the client they started on.
void ConfigureTls(http::TlsOptions tls);

// Performs one request. Transport failures (DNS, refused, timeout) -> kUnavailable naming the
// URL; a cancelled request -> kCancelled.
Result<HttpResponse> Perform(const HttpRequest& request, CancelToken* cancel = nullptr);

}  // namespace asya::aws
