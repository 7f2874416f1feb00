// Test runtime: sleeps payload.sleep_ms milliseconds, then echoes. Used to test the watchdog.
#include <chrono>
#include <thread>

#include "asya/runtime/serve.h"

int main() {
  return asya::runtime::Serve([](const nlohmann::json& payload) {
    std::this_thread::sleep_for(std::chrono::milliseconds(payload.value("sleep_ms", 0)));
    return payload;
  });
}
