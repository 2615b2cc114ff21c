#include "CLBlastParameters.h"
#include <clblast.h>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>

extern "C" int eddy_clblast_parameters(void *device, const char *kernel, int precision, char *out, size_t capacity) {
  try {
    std::unordered_map<std::string, size_t> parameters;
    const auto status = clblast::RetrieveParameters(static_cast<cl_device_id>(device), kernel,
                                                    static_cast<clblast::Precision>(precision), parameters);
    if (status != clblast::StatusCode::kSuccess) { return static_cast<int>(status); }
    const std::map<std::string, size_t> sorted(parameters.begin(), parameters.end());
    std::string text;
    for (const auto &p : sorted) { text += (text.empty() ? "" : " ") + p.first + "=" + std::to_string(p.second); }
    if (text.size() + 1 > capacity) { return -1; }
    std::memcpy(out, text.c_str(), text.size() + 1);
    return 0;
  } catch (...) {
    return -2;
  }
}
