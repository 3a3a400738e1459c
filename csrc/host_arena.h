// Elastic host memory arena: one virtual range reserved up front, pages committed and released on demand.
// Plain C++ (no torch): the torch binding lives in host_bindings.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace morphserve {

class HostArena {
 public:
  // Reserves `capacity_bytes` (rounded up to whole pages) of address space; no memory is committed.
  explicit HostArena(std::size_t capacity_bytes);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  std::uint8_t* base() const { return base_; }
  std::size_t capacity_bytes() const { return capacity_; }
  static std::size_t page_size();

  // Returns the whole pages inside [offset, offset + nbytes) to the OS; they read back as zeros.
  // Partial pages at either end keep their contents. Returns the number of bytes released.
  std::size_t release(std::size_t offset, std::size_t nbytes);

  // Pre-faults every page touching [offset, offset + nbytes) as writable, keeping the contents.
  // Returns the number of bytes (whole pages) covered.
  std::size_t commit(std::size_t offset, std::size_t nbytes);

  // Throws std::out_of_range unless [offset, offset + nbytes) lies inside the arena.
  void check_range(std::size_t offset, std::size_t nbytes) const;

 private:
  std::uint8_t* base_;
  std::size_t capacity_;
};

}  // namespace morphserve
