/* An empty preloaded library: what preloading any library costs, to compare with. */
int nosparse_test_empty_library;
