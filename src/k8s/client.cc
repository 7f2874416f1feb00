#include "asya/k8s/client.h"

#include <array>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include <sys/stat.h>

#include "asya/base/log.h"
#include "asya/base/time_format.h"
#include "asya/http/url.h"

namespace asya::k8s {

using nlohmann::json;

namespace res {
const Resource kAsyncActors{"asya.sh", "v1alpha1", "asyncactors", true, "AsyncActor"};
const Resource kDeployments{"apps", "v1", "deployments", true, "Deployment"};
const Resource kStatefulSets{"apps", "v1", "statefulsets", true, "StatefulSet"};
const Resource kPods{"", "v1", "pods", true, "Pod"};
const Resource kConfigMaps{"", "v1", "configmaps", true, "ConfigMap"};
const Resource kSecrets{"", "v1", "secrets", true, "Secret"};
const Resource kServiceAccounts{"", "v1", "serviceaccounts", true, "ServiceAccount"};
const Resource kServices{"", "v1", "services", true, "Service"};
const Resource kEvents{"", "v1", "events", true, "Event"};
const Resource kLeases{"coordination.k8s.io", "v1", "leases", true, "Lease"};
const Resource kHpas{"autoscaling", "v2", "horizontalpodautoscalers", true,
                     "HorizontalPodAutoscaler"};
const Resource kScaledObjects{"keda.sh", "v1alpha1", "scaledobjects", true, "ScaledObject"};
const Resource kTriggerAuthentications{"keda.sh", "v1alpha1", "triggerauthentications", true,
                                       "TriggerAuthentication"};
}  // namespace res

std::string Resource::Path(std::string_view ns, std::string_view name,
                           std::string_view subresource) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) {
    p += "/namespaces/" + http::PercentEncode(ns);
  }
  p += "/" + plural;
  if (!name.empty()) {
    p += "/" + http::PercentEncode(name);
    if (!subresource.empty()) {
      p += "/" + std::string(subresource);
    }
  }
  return p;
}

bool IsConflict(const Error& e) {
  return e.code == ErrorCode::kFailedPrecondition;
}
bool IsGone(const Error& e) {
  return e.code == ErrorCode::kResourceExhausted;
}
bool IsNotFound(const Error& e) {
  return e.code == ErrorCode::kNotFound;
}

namespace {

std::string Query(const std::vector<std::pair<std::string, std::string>>& q) {
  std::string out;
  for (const auto& [k, v] : q) {
    out += out.empty() ? "?" : "&";
    out += k + "=" + http::PercentEncode(v);
  }
  return out;
}

}  // namespace

Error StatusError(long code, std::string_view body, std::string_view what) {
  std::string message(body);
  std::string reason;
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    if (auto it = parsed.find("message"); it != parsed.end() && it->is_string()) {
      message = it->get<std::string>();
    }
    if (auto it = parsed.find("reason"); it != parsed.end() && it->is_string()) {
      reason = it->get<std::string>();
    }
  }
  ErrorCode ec = ErrorCode::kInternal;
  if (code == 404) {
    ec = ErrorCode::kNotFound;
  } else if (code == 409) {
    ec = reason == "AlreadyExists" ? ErrorCode::kAlreadyExists : ErrorCode::kFailedPrecondition;
  } else if (code == 410) {
    ec = ErrorCode::kResourceExhausted;
  } else if (code == 400 || code == 422 || code == 415) {
    ec = ErrorCode::kInvalidArgument;
  } else if (code == 401 || code == 403) {
    ec = ErrorCode::kPermissionDenied;
  } else if (code == 429 || code >= 500) {
    ec = ErrorCode::kUnavailable;
  }
  return Error{ec, std::string(what) + ": HTTP " + std::to_string(code) + ": " + message};
}

std::string MalformedObject(const json& object) {
  if (!object.is_object()) {
    return "object is not a JSON object";
  }
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) {
    return "metadata is not an object";
  }
  for (const char* key : {"name", "namespace", "resourceVersion", "uid", "deletionTimestamp"}) {
    if (auto it = meta->find(key); it != meta->end() && !it->is_string()) {
      return std::string("metadata.") + key + " is not a string";
    }
  }
  if (auto it = meta->find("generation"); it != meta->end() && !it->is_number_integer()) {
    return "metadata.generation is not an integer";
  }
  for (const char* key : {"labels", "annotations"}) {
    if (auto it = meta->find(key); it != meta->end() && !it->is_object()) {
      return std::string("metadata.") + key + " is not an object";
    }
  }
  return "";
}

WatchEvent ParseWatchLine(std::string_view line) {
  WatchEvent out;
  if (line.empty()) {
    return out;
  }
  auto ev = json::parse(line, nullptr, false);
  if (!ev.is_object()) {
    out.message = "watch event is not a JSON object";
    return out;
  }
  auto type = ev.find("type");
  auto object = ev.find("object");
  if (type == ev.end() || !type->is_string() || object == ev.end()) {
    out.message = "watch event without a type string and an object";
    return out;
  }
  out.type = type->get<std::string>();
  if (out.type == "ERROR") {
    out.kind = WatchEvent::Kind::kError;
    out.message = "watch error";
    if (object->is_object()) {
      if (auto code = object->find("code"); code != object->end() && code->is_number_integer()) {
        out.gone = code->get<int64_t>() == 410;
      }
      if (auto msg = object->find("message"); msg != object->end() && msg->is_string()) {
        out.message = msg->get<std::string>();
      }
    }
    return out;
  }
  if (std::string why = MalformedObject(*object); !why.empty()) {
    out.message = "malformed " + out.type + " event: " + why;
    return out;
  }
  out.kind = WatchEvent::Kind::kObject;
  out.resource_version = (*object)["metadata"].value("resourceVersion", "");
  out.object = std::move(*object);
  return out;
}

Client::Client(Config config, Clock* clock)
    : config_(std::move(config)), clock_(clock != nullptr ? clock : &SystemClock()) {
  http::ClientOptions o;
  o.base_url = config_.server;
  o.tls = config_.tls;
  o.timeout = http::Millis(30'000);
  o.connect_timeout = http::Millis(5'000);
  o.clock = clock_;
  o.default_headers = {{"Accept", "application/json"}, {"User-Agent", "asya-operator/1.0"}};
  http_ = std::make_unique<http::Client>(o);
  o.timeout = http::Millis(0);  // watches last as long as the server keeps them
  watch_http_ = std::make_unique<http::Client>(o);
  token_ = config_.token;
}

http::Headers Client::AuthHeaders(bool reread) const {
  std::lock_guard<std::mutex> lock(token_mu_);
  if (!config_.token_file.empty()) {
    // stat() follows the symlinks: kubelet rotates a projected token by writing a new directory
    // and swapping the `..data` symlink, so the file behind `token` is a new inode, possibly with
    // the old mtime. Any change of device, inode, size, mtime or ctime re-reads it.
    struct stat st {};
    if (::stat(config_.token_file.c_str(), &st) == 0) {
      auto ns = [](const timespec& t) {
        return static_cast<long long>(t.tv_sec) * 1'000'000'000LL + t.tv_nsec;
      };
      std::array<long long, 5> key = {
          static_cast<long long>(st.st_dev), static_cast<long long>(st.st_ino),
          static_cast<long long>(st.st_size), ns(st.st_mtim), ns(st.st_ctim)};
      if (reread || key != token_key_) {
        std::ifstream in(config_.token_file);
        std::ostringstream s;
        s << in.rdbuf();
        std::string t = s.str();
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) {
          t.pop_back();
        }
        if (in || !t.empty()) {
          token_ = t;
          token_key_ = key;
        }
      }
    }
  }
  if (token_.empty()) {
    return {};
  }
  return {{"Authorization", "Bearer " + token_}};
}

Result<json> Client::Call(std::string method, std::string path, std::string body,
                          std::string content_type) const {
  http::Request req;
  req.method = method;
  req.url = path;
  req.headers = AuthHeaders();
  if (!content_type.empty()) {
    req.headers.emplace_back("Content-Type", content_type);
  }
  req.body = std::move(body);
  auto resp = http_->Do(req);
  if (resp && resp->status == 401 && !config_.token_file.empty()) {
    // The token may have been rotated in a way the file's metadata did not show: read it again
    // and retry once with it if it changed.
    const http::Headers before = req.headers;
    http::Headers auth = AuthHeaders(/*reread=*/true);
    if (!auth.empty() && (before.empty() || before.front() != auth.front())) {
      req.headers = auth;
      if (!content_type.empty()) {
        req.headers.emplace_back("Content-Type", content_type);
      }
      resp = http_->Do(req);
    }
  }
  if (!resp) {
    return MakeError(ErrorCode::kUnavailable, method + " " + path + ": " + resp.error().message);
  }
  if (resp->status < 200 || resp->status >= 300) {
    return tl::unexpected(StatusError(resp->status, resp->body, method + " " + path));
  }
  if (resp->body.empty()) {
    return json::object();
  }
  auto parsed = json::parse(resp->body, nullptr, false);
  if (parsed.is_discarded()) {
    return MakeError(ErrorCode::kInternal, method + " " + path + ": response is not JSON");
  }
  return parsed;
}

Result<json> Client::Get(const Resource& r, std::string_view ns, std::string_view name) const {
  return Call("GET", r.Path(ns, name), "", "");
}

Result<json> Client::List(const Resource& r, std::string_view ns,
                          const ListOptions& options) const {
  std::vector<std::pair<std::string, std::string>> q;
  if (!options.label_selector.empty())
    q.emplace_back("labelSelector", options.label_selector);
  if (!options.field_selector.empty())
    q.emplace_back("fieldSelector", options.field_selector);
  return Call("GET", r.Path(ns) + Query(q), "", "");
}

Result<json> Client::Create(const Resource& r, std::string_view ns, const json& object) const {
  return Call("POST", r.Path(ns), object.dump(), "application/json");
}

Result<json> Client::Update(const Resource& r, std::string_view ns, const json& object) const {
  std::string name = object["metadata"].value("name", "");
  return Call("PUT", r.Path(ns, name), object.dump(), "application/json");
}

Result<json> Client::UpdateStatus(const Resource& r, std::string_view ns,
                                  const json& object) const {
  std::string name = object["metadata"].value("name", "");
  return Call("PUT", r.Path(ns, name, "status"), object.dump(), "application/json");
}

Result<json> Client::Patch(const Resource& r, std::string_view ns, std::string_view name,
                           const json& patch, std::string_view patch_type,
                           std::string_view subresource) const {
  std::string ct = patch_type == "json"        ? "application/json-patch+json"
                   : patch_type == "strategic" ? "application/strategic-merge-patch+json"
                                               : "application/merge-patch+json";
  return Call("PATCH", r.Path(ns, name, subresource), patch.dump(), ct);
}

Result<json> Client::Apply(const Resource& r, std::string_view ns, const json& object,
                           std::string_view field_manager, std::string_view subresource) const {
  std::string name = object["metadata"].value("name", "");
  std::string path = r.Path(ns, name, subresource) +
                     Query({{"fieldManager", std::string(field_manager)}, {"force", "true"}});
  return Call("PATCH", path, object.dump(), "application/apply-patch+yaml");
}

Status Client::Delete(const Resource& r, std::string_view ns, std::string_view name) const {
  auto out =
      Call("DELETE", r.Path(ns, name), R"({"propagationPolicy":"Background"})", "application/json");
  if (!out) {
    return Unexpected(out.error());
  }
  return Ok();
}

Result<std::string> Client::Watch(const Resource& r, std::string_view ns,
                                  const WatchOptions& options, const WatchHandler& handler,
                                  http::CancelToken* cancel) const {
  std::vector<std::pair<std::string, std::string>> q = {{"watch", "1"}};
  if (!options.resource_version.empty())
    q.emplace_back("resourceVersion", options.resource_version);
  if (options.bookmarks)
    q.emplace_back("allowWatchBookmarks", "true");
  if (!options.label_selector.empty())
    q.emplace_back("labelSelector", options.label_selector);
  q.emplace_back("timeoutSeconds", std::to_string(options.timeout_seconds));
  http::Request req;
  req.url = r.Path(ns) + Query(q);
  req.headers = AuthHeaders();
  std::string rv = options.resource_version;
  bool gone = false;
  std::string gone_message;
  auto resp = watch_http_->Stream(
      req,
      [&](std::string_view line) {
        WatchEvent ev = ParseWatchLine(line);
        switch (ev.kind) {
          case WatchEvent::Kind::kSkip:
            if (!ev.message.empty()) {
              log::Warn("k8s: watch " + r.plural + ": skipped a line: " + ev.message);
            }
            return true;
          case WatchEvent::Kind::kError:
            gone = gone || ev.gone;
            gone_message = ev.message;
            return false;
          case WatchEvent::Kind::kObject:
            break;
        }
        if (!ev.resource_version.empty()) {
          rv = ev.resource_version;
        }
        return handler(ev.type, ev.object);
      },
      cancel);
  if (!resp) {
    return Unexpected(resp.error());
  }
  if (resp->status == 410 || gone) {
    return MakeError(ErrorCode::kResourceExhausted,
                     "watch " + r.plural + ": 410 Gone " + gone_message);
  }
  if (resp->status < 200 || resp->status >= 300) {
    return tl::unexpected(StatusError(resp->status, resp->body, "watch " + r.plural));
  }
  if (!gone_message.empty()) {
    return MakeError(ErrorCode::kUnavailable, "watch " + r.plural + ": " + gone_message);
  }
  return rv;
}

Status Client::RecordEvent(const json& object, std::string_view type, std::string_view reason,
                           std::string_view message, std::string_view component) const {
  const json& meta = object["metadata"];
  std::string ns = meta.value("namespace", "default");
  std::string now = FormatRfc3339(clock_->WallNow());
  json ev = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", meta.value("name", "object") + "."}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", object.value("apiVersion", "")},
        {"kind", object.value("kind", "")},
        {"name", meta.value("name", "")},
        {"namespace", ns},
        {"uid", meta.value("uid", "")},
        {"resourceVersion", meta.value("resourceVersion", "")}}},
      {"type", std::string(type)},
      {"reason", std::string(reason)},
      {"message", std::string(message)},
      {"source", {{"component", std::string(component)}}},
      {"reportingComponent", std::string(component)},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1}};
  auto out = Create(res::kEvents, ns, ev);
  if (!out) {
    return Unexpected(out.error());
  }
  return Ok();
}

}  // namespace asya::k8s
