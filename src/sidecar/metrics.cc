#include "asya/sidecar/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include <nlohmann/json.hpp>

#include "asya/base/log.h"

namespace asya::sidecar {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

const std::vector<double> kDurationBuckets = {.005, .01, .025, .05, .1, .25, .5,
                                              1,    2.5, 5,    10,  30, 60,  120};
const std::vector<double> kReceiveBuckets = {.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10};
const std::vector<double> kSendBuckets = {.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5};
const std::vector<double> kSizeBuckets = {1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
const std::vector<double> kCustomDefaultBuckets = {.005, .01, .025, .05, .1, .25,
                                                   .5,   1,   2.5,  5,   10};

struct Series {
  double value = 0;
  std::vector<uint64_t> buckets;  // per-bucket (non-cumulative) counts
  double sum = 0;
  uint64_t count = 0;
};

struct Family {
  std::string name;
  std::string help;
  Type type = Type::kCounter;
  std::vector<std::string> label_names;
  std::vector<double> bounds;
  mutable std::mutex mu;
  std::map<std::vector<std::string>, Series> series;

  Series& Get(std::vector<std::string>&& labels) {
    auto it = series.find(labels);
    if (it == series.end()) {
      it = series.emplace(std::move(labels), Series{}).first;
      it->second.buckets.assign(bounds.size(), 0);
    }
    return it->second;
  }
  void Add(std::vector<std::string> labels, double delta) {
    std::lock_guard<std::mutex> lock(mu);
    Get(std::move(labels)).value += delta;
  }
  void Observe(std::vector<std::string> labels, double v) {
    std::lock_guard<std::mutex> lock(mu);
    Series& s = Get(std::move(labels));
    auto it = std::lower_bound(bounds.begin(), bounds.end(), v);
    if (it != bounds.end()) {
      ++s.buckets[static_cast<size_t>(it - bounds.begin())];
    }
    s.sum += v;
    ++s.count;
  }
};

void AppendEscaped(std::string& out, std::string_view v, bool help) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && !help) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void AppendNumber(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  // As Go's strconv.FormatFloat(v, 'g', -1, 64) (what the original's client library prints):
  // shortest round-trip digits, exponent form when the exponent is < -4 or >= 6.
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string_view text(buf, static_cast<size_t>(sci.ptr - buf));
  int exp = 0;
  auto e = text.find('e');
  if (e != std::string_view::npos) {
    std::from_chars(text.data() + e + (text[e + 1] == '+' ? 2 : 1), text.data() + text.size(), exp);
  }
  if (v == 0 || (exp >= -4 && exp < 6)) {
    auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
    text = std::string_view(buf, static_cast<size_t>(fixed.ptr - buf));
  }
  out += text;
}

void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) {
    return;
  }
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += names[i];
    out += "=\"";
    AppendEscaped(out, values[i], false);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) {
      out += ',';
    }
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

bool ValidLabelName(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9') || s.substr(0, 2) == "__") {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

struct Metrics::Impl {
  MetricsOptions options;
  std::vector<std::unique_ptr<Family>> families;  // render order
  Family* received = nullptr;
  Family* processed = nullptr;
  Family* sent = nullptr;
  Family* failed = nullptr;
  Family* runtime_errors = nullptr;
  Family* processing = nullptr;
  Family* runtime = nullptr;
  Family* receive = nullptr;
  Family* send = nullptr;
  Family* size = nullptr;
  Family* active = nullptr;
  std::mutex register_mu;

  Family* Add(std::string name, std::string help, Type type, std::vector<std::string> labels,
              std::vector<double> bounds = {}) {
    auto f = std::make_unique<Family>();
    f->name = std::move(name);
    f->help = std::move(help);
    f->type = type;
    f->label_names = std::move(labels);
    f->bounds = std::move(bounds);
    families.push_back(std::move(f));
    return families.back().get();
  }
};

Metrics::Metrics(MetricsOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  const std::string p = m.options.name_space.empty() ? "" : m.options.name_space + "_";
  m.received =
      m.Add(p + "messages_received_total", "Total number of messages received from the queue",
            Type::kCounter, {"queue", "transport"});
  m.processed = m.Add(p + "messages_processed_total", "Total number of messages processed",
                      Type::kCounter, {"queue", "status"});
  m.sent = m.Add(p + "messages_sent_total", "Total number of messages sent to queues",
                 Type::kCounter, {"destination_queue", "message_type"});
  m.failed = m.Add(p + "messages_failed_total", "Total number of failed messages", Type::kCounter,
                   {"queue", "reason"});
  m.runtime_errors = m.Add(p + "runtime_errors_total", "Total number of runtime errors",
                           Type::kCounter, {"queue", "error_type"});
  m.processing = m.Add(p + "processing_duration_seconds",
                       "Total time to process a message (queue receive to final routing)",
                       Type::kHistogram, {"queue"}, kDurationBuckets);
  m.runtime =
      m.Add(p + "runtime_execution_duration_seconds", "Time spent executing the runtime handler",
            Type::kHistogram, {"queue"}, kDurationBuckets);
  m.receive =
      m.Add(p + "queue_receive_duration_seconds", "Time spent receiving messages from the queue",
            Type::kHistogram, {"queue", "transport"}, kReceiveBuckets);
  m.send = m.Add(p + "queue_send_duration_seconds", "Time spent sending messages to queues",
                 Type::kHistogram, {"destination_queue", "transport"}, kSendBuckets);
  m.size = m.Add(p + "envelope_size_bytes", "Size of envelopes in bytes", Type::kHistogram,
                 {"direction"}, kSizeBuckets);
  m.active = m.Add(p + "active_messages", "Number of messages currently being processed",
                   Type::kGauge, {});
  m.active->Add({}, 0);
}

Metrics::~Metrics() = default;

std::string Metrics::SanitizeName(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 1);
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':';
    out += ok ? c : '_';
  }
  if (!out.empty() && out[0] >= '0' && out[0] <= '9') {
    out.insert(out.begin(), '_');
  }
  return out;
}

Status Metrics::RegisterCustom(std::string_view text) {
  auto bad = [](std::string m) {
    return MakeError(ErrorCode::kInvalidArgument, "ASYA_CUSTOM_METRICS: " + std::move(m));
  };
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    return bad("invalid JSON");
  }
  if (!doc.is_array()) {
    return bad("expected a JSON array of {name, type, help, labels, buckets}");
  }
  std::lock_guard<std::mutex> lock(impl_->register_mu);
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& d = doc[i];
    const std::string where = "entry " + std::to_string(i);
    if (!d.is_object() || !d.contains("name") || !d["name"].is_string() ||
        d["name"].get<std::string>().empty()) {
      return bad(where + ": needs a non-empty string 'name'");
    }
    std::string name = SanitizeName(d["name"].get<std::string>());
    std::string type = d.value("type", std::string());
    if (d.contains("type") && !d["type"].is_string()) {
      return bad(where + ": 'type' must be a string");
    }
    std::string help =
        d.contains("help") && d["help"].is_string() ? d["help"].get<std::string>() : std::string();
    std::vector<std::string> labels;
    if (d.contains("labels") && !d["labels"].is_null()) {
      if (!d["labels"].is_array()) {
        return bad(where + ": 'labels' must be an array of strings");
      }
      for (const auto& l : d["labels"]) {
        if (!l.is_string() || !ValidLabelName(l.get<std::string>())) {
          return bad(where + ": invalid label name " + l.dump());
        }
        labels.push_back(l.get<std::string>());
      }
    }
    std::vector<double> buckets;
    if (d.contains("buckets") && !d["buckets"].is_null()) {
      if (!d["buckets"].is_array()) {
        return bad(where + ": 'buckets' must be an array of numbers");
      }
      for (const auto& b : d["buckets"]) {
        if (!b.is_number()) {
          return bad(where + ": 'buckets' must be an array of numbers");
        }
        buckets.push_back(b.get<double>());
      }
      std::sort(buckets.begin(), buckets.end());
    }
    for (const auto& f : impl_->families) {
      if (f->name == name) {
        return bad(where + ": duplicate metric name '" + name + "'");
      }
    }
    if (type == "counter") {
      impl_->Add(name, help, Type::kCounter, labels);
    } else if (type == "gauge") {
      impl_->Add(name, help, Type::kGauge, labels);
    } else if (type == "histogram") {
      impl_->Add(name, help, Type::kHistogram, labels,
                 buckets.empty() ? kCustomDefaultBuckets : buckets);
    } else {
      log::Warn("unknown custom metric type; metric skipped", {{"name", name}, {"type", type}});
    }
  }
  return Ok();
}

void Metrics::Received(size_t bytes) {
  impl_->received->Add({impl_->options.actor, impl_->options.transport}, 1);
  impl_->size->Observe({"received"}, static_cast<double>(bytes));
}
void Metrics::ReceiveDuration(double seconds) {
  impl_->receive->Observe({impl_->options.actor, impl_->options.transport}, seconds);
}
void Metrics::Processed(std::string_view status) {
  impl_->processed->Add({impl_->options.actor, std::string(status)}, 1);
}
void Metrics::Sent(std::string_view destination, std::string_view message_type, size_t bytes) {
  impl_->sent->Add({std::string(destination), std::string(message_type)}, 1);
  impl_->size->Observe({"sent"}, static_cast<double>(bytes));
}
void Metrics::SendDuration(std::string_view destination, double seconds) {
  impl_->send->Observe({std::string(destination), impl_->options.transport}, seconds);
}
void Metrics::Failed(std::string_view reason) {
  impl_->failed->Add({impl_->options.actor, std::string(reason)}, 1);
}
void Metrics::RuntimeError() {
  impl_->runtime_errors->Add({impl_->options.actor, "execution_error"}, 1);
}
void Metrics::ProcessingDuration(double seconds) {
  impl_->processing->Observe({impl_->options.actor}, seconds);
}
void Metrics::RuntimeDuration(double seconds) {
  impl_->runtime->Observe({impl_->options.actor}, seconds);
}
void Metrics::ActiveAdd(int delta) {
  impl_->active->Add({}, delta);
}

std::string Metrics::Render() const {
  std::string out;
  out.reserve(8192);
  for (const auto& f : impl_->families) {
    out += "# HELP ";
    out += f->name;
    out += ' ';
    AppendEscaped(out, f->help, true);
    out += "\n# TYPE ";
    out += f->name;
    out += f->type == Type::kCounter ? " counter\n"
           : f->type == Type::kGauge ? " gauge\n"
                                     : " histogram\n";
    std::lock_guard<std::mutex> lock(f->mu);
    for (const auto& [labels, s] : f->series) {
      if (f->type != Type::kHistogram) {
        out += f->name;
        AppendLabels(out, f->label_names, labels);
        out += ' ';
        AppendNumber(out, s.value);
        out += '\n';
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= f->bounds.size(); ++i) {
        std::string le;
        if (i < f->bounds.size()) {
          cumulative += s.buckets[i];
          AppendNumber(le, f->bounds[i]);
        } else {
          cumulative = s.count;
          le = "+Inf";
        }
        out += f->name;
        out += "_bucket";
        AppendLabels(out, f->label_names, labels, "le", le);
        out += ' ';
        out += std::to_string(cumulative);
        out += '\n';
      }
      out += f->name;
      out += "_sum";
      AppendLabels(out, f->label_names, labels);
      out += ' ';
      AppendNumber(out, s.sum);
      out += '\n';
      out += f->name;
      out += "_count";
      AppendLabels(out, f->label_names, labels);
      out += ' ';
      out += std::to_string(s.count);
      out += '\n';
    }
  }
  return out;
}

}  // namespace asya::sidecar
