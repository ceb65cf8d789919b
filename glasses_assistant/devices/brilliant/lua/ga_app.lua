-- SPDX-License-Identifier: GPL-3.0-or-later
-- glasses-assistant's app on Brilliant Labs Frame and Halo (uploaded on every connect).
--
-- The host is the brain; this app is the glasses' half of the link: it streams the microphone,
-- reports taps, buttons and battery, draws the text the host sends, plays the reply on the
-- speaker (Halo) and takes a photo when, and only when, the host asks (Frame's camera.lua).
-- Messages use the vendor's data.lua framing; docs/brilliant.md lists every code.
-- An error in a handler is caught, sent to the host as one line (LUA_ERROR) and the app goes on.

local data = require('data.min')
local battery = require('battery.min')
local tap = require('tap.min')
local plain_text = require('plain_text.min')
local code = require('code.min')
local camera = nil
if frame.camera ~= nil then camera = require('camera.min') end

-- host -> glasses
local START_MSG = 0x10
local TEXT_MSG = 0x11
local CLEAR_MSG = 0x12
local SPEAKER_DATA_MSG = 0x13
local SPEAKER_STOP_MSG = 0x14
local CAPTURE_MSG = 0x15
local BATTERY_REQ_MSG = 0x16
local STOP_MSG = 0x17
local PING_MSG = 0x19

-- glasses -> host (0x05/0x06 audio, 0x07/0x08 photo, 0x09 tap and 0x0c battery are the vendor's)
local AUDIO_NON_FINAL_MSG = 0x05
local BUTTON_MSG = 0x0b
local BATTERY_MSG = 0x0c
local HELLO_MSG = 0x20
local LUA_ERROR_MSG = 0x21
local PONG_MSG = 0x24

local is_frame = frame.HARDWARE_VERSION == 'Frame'
local listening = false
local read_size = 240
local speaker_on = false
local speaker_cfg = nil
local running = true
local last_exposure = 0

local function send(payload)
	-- the link may be busy: retry for up to 0.5 s, then drop (the host counts gaps in what it gets)
	local until_t = frame.time.utc() + 0.5
	while not pcall(frame.bluetooth.send, payload) do
		if frame.time.utc() > until_t then return false end
		frame.sleep(0.0025)
	end
	return true
end

local function report_error(where, err)
	local msg = string.gsub(tostring(err), '[\r\n]+', ' ')
	local room = frame.bluetooth.max_length() - 1
	send(string.char(LUA_ERROR_MSG) .. string.sub(where .. ': ' .. msg, 1, room))
end

local function send_battery()
	local level = math.floor(frame.battery_level())
	local charging = 0
	if frame.battery_charging ~= nil and frame.battery_charging() then charging = 1 end
	send(string.char(BATTERY_MSG, level, charging))
end

local function hello()
	local mic = 'pcm'
	if not is_frame then mic = 'lc3' end
	local parts = {
		'hw=' .. frame.HARDWARE_VERSION,
		'fw=' .. (frame.FIRMWARE_VERSION or '?'),
		'mic=' .. mic,
		'cam=' .. (camera ~= nil and '1' or '0'),
		'spk=' .. (frame.speaker ~= nil and '1' or '0'),
		'w=' .. frame.display.width(),
		'h=' .. frame.display.height(),
		'mtu=' .. frame.bluetooth.max_length(),
	}
	send(string.char(HELLO_MSG) .. table.concat(parts, ';'))
end

local function show_lines(text, x, y, spacing, color_index)
	frame.display.clear()
	local i = 0
	for line in string.gmatch(text, '([^\n]*)\n?') do
		if line ~= '' then
			if is_frame then
				frame.display.text(line, x, y + i * spacing, {color = color_index})
			else
				frame.display.text(line, x, y + i * spacing, color_index)
			end
		end
		i = i + 1
	end
	if is_frame then frame.display.show() end
end

local function start(raw)
	-- [1] codec 0 pcm / 1 lc3, [2..3] sample rate, [4] LC3 frame bytes (40: 32 kbit/s),
	-- [5] speaker volume 0..100, [6] battery report interval (s)
	local codec = string.byte(raw, 1)
	local rate = string.byte(raw, 2) << 8 | string.byte(raw, 3)
	local frame_bytes = string.byte(raw, 4)
	local volume = string.byte(raw, 5)
	local room = math.min(frame.bluetooth.max_length() - 1, 240)
	if codec == 1 then
		frame.microphone.start {encoder = 'lc3', sample_rate = rate, bitrate = frame_bytes * 800, channels = 1}
		read_size = room - room % frame_bytes
	else
		frame.microphone.start {sample_rate = rate, bit_depth = 16}
		read_size = room - room % 2
	end
	listening = true
	if frame.speaker ~= nil then
		speaker_cfg = {encoder = 'lc3', sample_rate = 16000, channels = 1, duration = 1000,
			bitrate = frame_bytes * 800, volume = volume}
		frame.speaker.start(speaker_cfg)
		speaker_on = true
	end
end

local parsers = {}
parsers[TEXT_MSG] = plain_text.parse_plain_text
parsers[CAPTURE_MSG] = function(raw) return camera.parse_capture_settings(raw) end

local handlers = {}
handlers[START_MSG] = start
handlers[TEXT_MSG] = function(t)
	if t.string ~= nil then show_lines(t.string, t.x, t.y, t.spacing, t.color) end
end
handlers[CLEAR_MSG] = function() frame.display.clear(); if is_frame then frame.display.show() end end
handlers[SPEAKER_DATA_MSG] = function(raw)
	if speaker_on then frame.speaker.play(raw) end
end
handlers[SPEAKER_STOP_MSG] = function()
	-- stop drops what is queued and not yet played; started again at once for the next reply
	if speaker_on then
		frame.speaker.stop()
		frame.speaker.start(speaker_cfg)
	end
end
handlers[CAPTURE_MSG] = function(settings)
	if camera == nil then error('this device has no camera') end
	camera.start_capture(settings)
end
handlers[BATTERY_REQ_MSG] = function() send_battery() end
handlers[STOP_MSG] = function() running = false end
handlers[PING_MSG] = function(raw) send(string.char(PONG_MSG) .. raw) end

local function on_tap(kind)
	local ok, err = pcall(tap.send_tap, kind)
	if not ok then report_error('tap', err) end
end

local function on_button(kind)
	return function() send(string.char(BUTTON_MSG, kind)) end
end

frame.imu.tap_callback(on_tap)
if frame.button ~= nil then
	frame.button.single(on_button(1))
	frame.button.double(on_button(2))
	frame.button.long(on_button(3))
end

local function step(last_batt)
	for _, item in ipairs(data.process_raw_items()) do
		local flag, raw = item[1], item[2]
		local ok, err = pcall(function()
			local parse = parsers[flag]
			local handler = handlers[flag]
			if handler ~= nil then
				if parse ~= nil then handler(parse(raw)) else handler(raw) end
			end
		end)
		if not ok then report_error(string.format('message 0x%02x', flag), err) end
	end
	if listening then
		for _ = 1, 20 do
			local audio = frame.microphone.read(read_size)
			if audio == nil then listening = false; break end
			if audio == '' then break end
			send(string.char(AUDIO_NON_FINAL_MSG) .. audio)
		end
	end
	if camera ~= nil then
		if camera.is_sending() then camera.send_pending(16) end
		local now = frame.time.utc()
		if frame.camera.auto ~= nil and now - last_exposure > 0.1 then
			-- Frame's auto exposure wants a step every 100 ms; a failed step only costs image quality
			pcall(camera.run_auto_exposure)
			last_exposure = now
		end
	end
	return battery.send_batt_if_elapsed(last_batt, 60)
end

if not is_frame and frame.display.set_font ~= nil then
	-- Halo's 8 px font is hard to read on a moving head: twice the size, 13 characters a line
	pcall(frame.display.set_font, 0, 16)
end
frame.display.clear()
hello()
send_battery()
print('ga_app ready')
local last_batt = frame.time.utc()
while running do
	local ok, result = pcall(step, last_batt)
	if ok then last_batt = result else report_error('loop', result) end
	if listening then frame.sleep(0.005) else frame.sleep(0.02) end
end
pcall(frame.microphone.stop)
if speaker_on then pcall(frame.speaker.stop) end
frame.display.clear()
