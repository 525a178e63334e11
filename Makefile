# ssock: a thin wrapper over CMake. `make test` is the gate (scripts/gate.sh).
#
#   make deps          check (as root: install) the Debian packages needed,
#                      then build mbedTLS 3.6 from Debian's source into
#                      build/deps/ (scripts/deps-mbedtls.sh; once)
#   make build         gcc -O2 -g -Werror build in build/gcc
#   make test          the whole gate: gcc, Valgrind, ASan+UBSan, TSan,
#                      the examples, an install and a consumer build
#   make demo          run ssock-echo on port 7000 in the foreground
#   make install       install into $(PREFIX) (default /usr/local)
#   make test-cross ARCH=arm64|armhf
#                      cross-build (mbedTLS backend only) and run the ctest
#                      suite under qemu-user (scripts/test-cross.sh)
#   make format        clang-format -i over the C sources
#   make format-check  fail if any C source is not formatted
#   make clean         remove build/

PREFIX ?= /usr/local
BUILD  := build
FORMAT_DIRS := src include tests examples fuzz bench
FORMAT_FILES = $(shell find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null)

.PHONY: all deps build test test-cross demo install clean format format-check fuzz bench mutants

all: build

deps:
	@scripts/deps.sh

build: deps
	@scripts/build.sh gcc

test:
	@scripts/gate.sh

# make test-cross ARCH=arm64|armhf (default arm64)
test-cross:
	@scripts/test-cross.sh $(or $(ARCH),arm64)

demo: build
	@echo
	@echo "ssock-echo is starting with TLS on port 7000, using the development"
	@echo "certificates in certs/ (for tests only). Ctrl-C stops it."
	@echo "Talk to it from another terminal:"
	@echo "    openssl s_client -connect 127.0.0.1:7000 -CAfile certs/ca.pem -servername localhost"
	@echo "Plain TCP instead: $(BUILD)/gcc/examples/ssock-echo --port 7000 (then socat - TCP:127.0.0.1:7000)"
	@echo
	@exec $(BUILD)/gcc/examples/ssock-echo --port 7000 --tls

install: build
	cmake --install $(BUILD)/gcc --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# make fuzz TARGET=addr|lifecycle|tls_mbedtls|tls_openssl|all SECONDS=60
fuzz: deps
	@fuzz/run.sh $(or $(TARGET),all) $(or $(SECONDS),60)

# Mutation testing: each mutant of scripts/mutants/list.tsv applied to a copy
# of the tree, built and run through ctest; prints caught/survived and a score.
mutants:
	@scripts/mutants.sh $(ONLY)

# Benchmarks: ssock against raw poll/OpenSSL/mbedTLS servers (~7 min).
bench: build
	@bash bench/run.sh $(BUILD)/gcc
