// hwgen: simulation variant of the popcount modules of hwgen_top.v (same ports
// and registers); each is proven equal to its adder trees by hwgen.sim.equiv.
/* verilator lint_off DECLFILENAME */

module hwgen_popcount_4(a, clk, rst, y, en_a, en_y);
  input [3:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [2:0] y = 3'd0;
  reg [2:0] c0 = 3'd0;
  /* verilator lint_on PROCASSINIT */
  function [2:0] count4(input [3:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] k;
    /* verilator lint_on UNUSEDSIGNAL */
    begin k = $countones(v); count4 = k[2:0]; end
  endfunction
  always @(posedge clk)
    if (rst) begin
      c0 <= 3'd0;
    end else if (en_a) begin
      c0 <= count4(a[3:0]);
    end
  always @(posedge clk)
    if (rst) y <= 3'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_9(a, clk, rst, y, en_a, en_y);
  input [8:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  function [3:0] count9(input [8:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] k;
    /* verilator lint_on UNUSEDSIGNAL */
    begin k = $countones(v); count9 = k[3:0]; end
  endfunction
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      c0 <= count9(a[8:0]);
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_11(a, clk, rst, y, en_a, en_y);
  input [10:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  function [3:0] count11(input [10:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] k;
    /* verilator lint_on UNUSEDSIGNAL */
    begin k = $countones(v); count11 = k[3:0]; end
  endfunction
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      c0 <= count11(a[10:0]);
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_16(a, clk, rst, y, en_a, en_y);
  input [15:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [4:0] y = 5'd0;
  reg [4:0] c0 = 5'd0;
  /* verilator lint_on PROCASSINIT */
  function [4:0] count16(input [15:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] k;
    /* verilator lint_on UNUSEDSIGNAL */
    begin k = $countones(v); count16 = k[4:0]; end
  endfunction
  always @(posedge clk)
    if (rst) begin
      c0 <= 5'd0;
    end else if (en_a) begin
      c0 <= count16(a[15:0]);
    end
  always @(posedge clk)
    if (rst) y <= 5'd0;
    else if (en_y) y <= c0;
endmodule
