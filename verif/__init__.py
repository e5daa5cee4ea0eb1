"""cocotb testbenches on Verilator joining cimflow.hdl and cimflow.golden."""
