#include "host_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace morphserve {
namespace {

std::size_t round_down(std::size_t value, std::size_t alignment) { return value / alignment * alignment; }

std::size_t round_up(std::size_t value, std::size_t alignment) {
  return round_down(value + alignment - 1, alignment);
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Writes each page's first byte back to itself so the kernel maps it writable without changing it.
void touch_pages(std::uint8_t* begin, std::size_t nbytes, std::size_t page) {
  for (std::size_t off = 0; off < nbytes; off += page) {
    volatile std::uint8_t* byte = begin + off;
    *byte = *byte;
  }
}

}  // namespace

HostArena::HostArena(std::size_t capacity_bytes) : base_(nullptr), capacity_(0) {
  if (capacity_bytes == 0) throw std::invalid_argument("arena capacity must be positive");
  capacity_ = round_up(capacity_bytes, page_size());
  void* mapping = mmap(nullptr, capacity_, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) throw_errno("mmap of " + std::to_string(capacity_) + " bytes failed");
  base_ = static_cast<std::uint8_t*>(mapping);
}

HostArena::~HostArena() { munmap(base_, capacity_); }

std::size_t HostArena::page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

void HostArena::check_range(std::size_t offset, std::size_t nbytes) const {
  if (offset > capacity_ || nbytes > capacity_ - offset) {
    throw std::out_of_range("range [" + std::to_string(offset) + ", +" + std::to_string(nbytes) +
                            ") exceeds arena capacity " + std::to_string(capacity_));
  }
}

std::size_t HostArena::release(std::size_t offset, std::size_t nbytes) {
  check_range(offset, nbytes);
  const std::size_t begin = round_up(offset, page_size());
  const std::size_t end = round_down(offset + nbytes, page_size());
  if (end <= begin) return 0;
  if (madvise(base_ + begin, end - begin, MADV_DONTNEED) != 0) throw_errno("madvise(MADV_DONTNEED) failed");
  return end - begin;
}

std::size_t HostArena::commit(std::size_t offset, std::size_t nbytes) {
  check_range(offset, nbytes);
  if (nbytes == 0) return 0;
  const std::size_t begin = round_down(offset, page_size());
  const std::size_t end = round_up(offset + nbytes, page_size());
#ifdef MADV_POPULATE_WRITE
  if (madvise(base_ + begin, end - begin, MADV_POPULATE_WRITE) == 0) return end - begin;
  if (errno != EINVAL) throw_errno("madvise(MADV_POPULATE_WRITE) failed");
#endif
  touch_pages(base_ + begin, end - begin, page_size());  // kernels older than Linux 5.14
  return end - begin;
}

}  // namespace morphserve
