// asya-word-count-runtime: splits `payload.text` into sentences and emits one payload per sentence
// with its word count (a fan-out), using the nlohmann::json handler API.
//
//   in:  {"text": "Hello world. Asya is an actor mesh!"}
//   out: {"sentence": "Hello world.", "words": 2, "index": 0, "attempt": 1}
//        {"sentence": "Asya is an actor mesh!", "words": 5, "index": 1, "attempt": 1}
// No sentences -> no output (the sidecar sends the envelope to happy-end); a payload without a
// string `text` -> processing_error of type ValueError.
#include <cctype>
#include <sstream>
#include <string>

#include "asya/runtime/serve.h"

namespace {

using asya::runtime::HandlerError;
using nlohmann::json;

json CountWords(const json& payload, const asya::runtime::Request& request) {
  if (!payload.is_object() || !payload.contains("text") || !payload["text"].is_string()) {
    throw HandlerError{"ValueError", "payload.text must be a string"};
  }
  const auto& text = payload["text"].get_ref<const std::string&>();
  json outputs = json::array();
  std::string sentence;
  auto flush = [&] {
    size_t begin = sentence.find_first_not_of(" \t\n");
    if (begin != std::string::npos) {
      std::string trimmed = sentence.substr(begin);
      std::istringstream words(trimmed);
      int count = 0;
      for (std::string w; words >> w;) {
        ++count;
      }
      outputs.push_back({{"sentence", trimmed},
                         {"words", count},
                         {"index", outputs.size()},
                         {"attempt", request.Attempt()}});
    }
    sentence.clear();
  };
  for (char c : text) {
    sentence += c;
    if (c == '.' || c == '!' || c == '?') {
      flush();
    }
  }
  flush();
  return outputs.empty() ? json(nullptr) : outputs;
}

}  // namespace

int main() {
  return asya::runtime::Serve(CountWords);
}
